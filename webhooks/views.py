"""Portal pages for webhook endpoints: list, create, detail, edit, disable/enable, delete,
rotate the secret, send a test event, the delivery log, re-delivery and replay.

Every page needs KEYS_MANAGE (owners, admins, developers): endpoints and their delivery log
(request headers, response bodies of the customer's own servers) are developer tooling, the
same people who hold the API keys; billing members and viewers do not see them. Objects are
fetched through org-scoped selectors, so another organization's id is simply not found.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from common.errors import TollgateError
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.forms import add_service_error
from portal.roles import Permission
from webhooks import endpoints, selectors
from webhooks.forms import AttemptFilterForm, DisableForm, EndpointForm, ReplayForm
from webhooks.models import WebhookEndpoint

PAGE_SIZE = 50
RECENT_ATTEMPTS = 10
NAV = {"nav_section": "webhooks"}


def _bound(request: HttpRequest, form_class, **kwargs):
    if request.method == "POST":
        return form_class(request.POST, **kwargs)
    return form_class(**kwargs)


def _report(request: HttpRequest, error: TollgateError, form=None) -> None:
    if form is None or not add_service_error(form, error):
        messages.error(request, error.detail)


def _render_secret(request: HttpRequest, context: dict) -> HttpResponse:
    """The one response that carries a signing secret: never cached, never shown again."""
    response = render(request, "webhooks/secret.html", {**NAV, **context})
    add_never_cache_headers(response)
    return response


def _endpoint(request: HttpRequest, endpoint_id) -> WebhookEndpoint:
    return selectors.endpoint_get(organization=request.organization, endpoint_id=endpoint_id)


def _to_detail(request: HttpRequest, endpoint: WebhookEndpoint) -> HttpResponse:
    return redirect(
        "webhooks:endpoint_detail", slug=request.organization.slug, endpoint_id=endpoint.id
    )


def _to_log(request: HttpRequest, endpoint: WebhookEndpoint) -> HttpResponse:
    return redirect(
        "webhooks:endpoint_attempts", slug=request.organization.slug, endpoint_id=endpoint.id
    )


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    found = selectors.endpoint_list(organization=request.organization)
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "webhooks/list.html", {**NAV, "page": page})


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = _bound(request, EndpointForm)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = endpoints.webhook_endpoint_create(
                actor=Actor.from_request(request),
                organization=request.organization,
                **form.cleaned_data,
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            return _render_secret(request, {"endpoint": endpoint, "secret": secret})
    return render(request, "webhooks/form.html", {**NAV, "form": form})


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_detail(request: HttpRequest, endpoint_id) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    return render(
        request,
        "webhooks/detail.html",
        {
            **NAV,
            "endpoint": endpoint,
            "secret_fingerprint": endpoints.secret_fingerprint(endpoint),
            "previous_secret_expires_at": endpoints.previous_secret_expires_at(endpoint),
            "attempts": selectors.attempt_list(endpoint=endpoint)[:RECENT_ATTEMPTS],
            "disable_form": DisableForm(),
        },
    )


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_edit(request: HttpRequest, endpoint_id) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    form = _bound(
        request,
        EndpointForm,
        initial={
            "url": endpoint.url,
            "environment": endpoint.environment,
            "event_types": endpoint.event_types,
            "description": endpoint.description,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = endpoints.webhook_endpoint_update(
                actor=Actor.from_request(request), endpoint=endpoint, **form.cleaned_data
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            messages.success(request, "The endpoint is saved.")
            return _to_detail(request, endpoint)
    return render(request, "webhooks/form.html", {**NAV, "form": form, "endpoint": endpoint})


@org_member_required(Permission.KEYS_MANAGE)
@require_POST
def endpoint_disable(request: HttpRequest, endpoint_id) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    form = DisableForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else None
    try:
        endpoints.webhook_endpoint_disable(
            actor=Actor.from_request(request), endpoint=endpoint, reason=reason
        )
    except TollgateError as error:
        _report(request, error)
    else:
        messages.success(request, "The endpoint is disabled: no new deliveries are made to it.")
    return _to_detail(request, endpoint)


@org_member_required(Permission.KEYS_MANAGE)
@require_POST
def endpoint_enable(request: HttpRequest, endpoint_id) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        endpoints.webhook_endpoint_enable(actor=Actor.from_request(request), endpoint=endpoint)
    except TollgateError as error:
        _report(request, error)
    else:
        messages.success(request, "The endpoint is enabled.")
    return _to_detail(request, endpoint)


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_delete(request: HttpRequest, endpoint_id) -> HttpResponse:
    """GET is the confirmation page; only the POST deletes."""
    endpoint = _endpoint(request, endpoint_id)
    if request.method == "POST":
        endpoints.webhook_endpoint_delete(actor=Actor.from_request(request), endpoint=endpoint)
        messages.success(request, f"The endpoint {endpoint.url} is deleted.")
        return redirect("webhooks:endpoint_list", slug=request.organization.slug)
    return render(request, "webhooks/delete.html", {**NAV, "endpoint": endpoint})


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_rotate(request: HttpRequest, endpoint_id) -> HttpResponse:
    """GET explains the 24-hour overlap; POST rotates and shows the new secret once."""
    endpoint = _endpoint(request, endpoint_id)
    if request.method == "POST":
        endpoint, secret = endpoints.webhook_endpoint_rotate_secret(
            actor=Actor.from_request(request), endpoint=endpoint
        )
        return _render_secret(
            request,
            {
                "endpoint": endpoint,
                "secret": secret,
                "rotated": True,
                "previous_secret_expires_at": endpoints.previous_secret_expires_at(endpoint),
            },
        )
    return render(request, "webhooks/rotate.html", {**NAV, "endpoint": endpoint})


@org_member_required(Permission.KEYS_MANAGE)
@require_POST
def endpoint_test(request: HttpRequest, endpoint_id) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        delivery = endpoints.webhook_endpoint_send_test(
            actor=Actor.from_request(request), endpoint=endpoint
        )
    except TollgateError as error:
        _report(request, error)
        return _to_detail(request, endpoint)
    messages.success(
        request,
        f"A ping event ({delivery.event_id}) is on its way; its attempt appears below "
        "in a few seconds.",
    )
    return _to_log(request, endpoint)


def _render_log(request: HttpRequest, endpoint: WebhookEndpoint, replay_form) -> HttpResponse:
    filter_form = AttemptFilterForm(request.GET)
    filters = filter_form.filters()
    attempts = selectors.attempt_list(endpoint=endpoint, **filters)
    page = Paginator(attempts, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/attempts.html",
        {
            **NAV,
            "endpoint": endpoint,
            "filter_form": filter_form,
            "filtered": bool(filters),
            "page": page,
            "replay_form": replay_form,
        },
    )


@org_member_required(Permission.KEYS_MANAGE)
def endpoint_attempts(request: HttpRequest, endpoint_id) -> HttpResponse:
    return _render_log(request, _endpoint(request, endpoint_id), ReplayForm())


@org_member_required(Permission.KEYS_MANAGE)
@require_POST
def endpoint_replay(request: HttpRequest, endpoint_id) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    form = ReplayForm(request.POST)
    if form.is_valid():
        try:
            count = endpoints.webhook_endpoint_replay(
                actor=Actor.from_request(request),
                endpoint=endpoint,
                since=form.cleaned_data["since"],
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            messages.success(
                request,
                f"{count} event{'' if count == 1 else 's'} queued for delivery again, "
                "with their original webhook-id.",
            )
            return _to_log(request, endpoint)
    return _render_log(request, endpoint, form)


@org_member_required(Permission.KEYS_MANAGE)
@require_POST
def event_redeliver(request: HttpRequest, endpoint_id, event_id) -> HttpResponse:
    """The log's "Redeliver" button: this event again, to this endpoint."""
    endpoint = _endpoint(request, endpoint_id)
    event = selectors.event_get(organization=request.organization, event_id=event_id)
    try:
        endpoints.event_redeliver(actor=Actor.from_request(request), event=event, endpoint=endpoint)
    except TollgateError as error:
        _report(request, error)
    else:
        messages.success(request, f"Event {event.id} is queued for delivery again.")
    return _to_log(request, endpoint)
