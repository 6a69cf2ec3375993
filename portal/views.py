"""Portal pages. Each one parses a form, checks the role, calls one service, and renders.

Permission checks live in `portal.decorators.org_member_required`; every object is fetched
through an org-scoped selector, so another organization's id is simply not found. Secrets
(API keys, tokens) are rendered straight into the response of the POST that created them:
never stored in the session or put in a URL, and sent with no-store so no cache keeps them.
"""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from common.errors import NotFound, TollgateError
from keys import selectors as key_selectors
from keys import services as key_services
from keys.models import ApiKey
from portal import selectors, services
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.exports import audit_log_csv_response
from portal.forms import (
    AuditFilterForm,
    InvitationForm,
    KeyCreateForm,
    KeyFilterForm,
    KeyRotateForm,
    MemberRoleForm,
    OrganizationForm,
    ProjectForm,
    TokenCreateForm,
    add_service_error,
)
from portal.models import ApiToken
from portal.roles import ROLE_CHOICES, Permission

PAGE_SIZE = 50
DASHBOARD_PROJECTS = 6


def _bound(request: HttpRequest, form_class, **kwargs):
    """A form bound to the POST body on POST (even an empty one), unbound on GET."""
    if request.method == "POST":
        return form_class(request.POST, **kwargs)
    return form_class(**kwargs)


def _report(request: HttpRequest, error: TollgateError, form=None) -> None:
    """A service error goes next to its field when the form has one, else into messages."""
    if form is None or not add_service_error(form, error):
        messages.error(request, error.detail)


def _paginate(request: HttpRequest, queryset: QuerySet) -> Page:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _render_secret(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    """The one response that carries a new secret: never cached, never shown again."""
    response = render(request, template, context)
    add_never_cache_headers(response)
    return response


# --- Home and organizations --------------------------------------------------------------
def home(request: HttpRequest) -> HttpResponse:
    """Visitors see the landing page; members go to their first organization."""
    if not request.user.is_authenticated:
        return render(request, "portal/landing.html")
    membership = selectors.memberships_for_user(user=request.user).first()
    if membership is None:
        return redirect("portal:organization_create")
    return redirect("portal:dashboard", slug=membership.organization.slug)


@login_required
def organization_create(request: HttpRequest) -> HttpResponse:
    form = _bound(request, OrganizationForm)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                actor=Actor.from_request(request), owner=request.user, **form.cleaned_data
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            messages.success(request, f"{organization.name} is ready. Create a project next.")
            return redirect("portal:dashboard", slug=organization.slug)
    return render(request, "portal/organizations/new.html", {"form": form})


@org_member_required(Permission.ORG_VIEW)
def dashboard(request: HttpRequest) -> HttpResponse:
    organization = request.organization
    projects = selectors.project_list(organization=organization)
    return render(
        request,
        "portal/dashboard.html",
        {
            "projects": projects[:DASHBOARD_PROJECTS],
            "project_count": projects.count(),
            "has_keys": key_selectors.key_list(organization=organization).exists(),
            "member_count": selectors.member_list(organization=organization).count(),
        },
    )


# --- Projects ----------------------------------------------------------------------------
@org_member_required(Permission.PROJECTS_VIEW)
def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.project_list(organization=request.organization)
    return render(request, "portal/projects/list.html", {"page": _paginate(request, projects)})


@org_member_required(Permission.PROJECTS_MANAGE)
def project_create(request: HttpRequest) -> HttpResponse:
    form = _bound(request, ProjectForm)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                actor=Actor.from_request(request),
                organization=request.organization,
                **form.cleaned_data,
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            messages.success(request, f"Project {project.name} created. Issue a test key next.")
            return redirect(
                "portal:project_detail", slug=request.organization.slug, project_id=project.id
            )
    return render(request, "portal/projects/new.html", {"form": form})


@org_member_required(Permission.PROJECTS_VIEW)
def project_detail(request: HttpRequest, project_id) -> HttpResponse:
    organization = request.organization
    project = selectors.project_get(organization=organization, project_id=project_id)
    keys = {
        f"{environment}_keys": key_selectors.key_list(
            organization=organization, project_id=project.id, environment=environment
        )
        for environment in ApiKey.Environment.values
    }
    return render(request, "portal/projects/detail.html", {"project": project, **keys})


# --- API keys ----------------------------------------------------------------------------
@org_member_required(Permission.KEYS_MANAGE)
def project_key_create(request: HttpRequest, project_id) -> HttpResponse:
    project = selectors.project_get(organization=request.organization, project_id=project_id)
    form = _bound(request, KeyCreateForm)
    if request.method == "POST" and form.is_valid():
        try:
            key, secret = key_services.key_create(
                actor=Actor.from_request(request), project=project, **form.cleaned_data
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            return _render_secret(
                request, "portal/keys/issued.html", {"key": key, "secret": secret}
            )
    return render(request, "portal/keys/new.html", {"project": project, "form": form})


@org_member_required(Permission.PROJECTS_VIEW)
def key_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization
    filter_form = KeyFilterForm(
        request.GET, projects=selectors.project_list(organization=organization)
    )
    keys = key_selectors.key_list(organization=organization, **filter_form.filters())
    return render(
        request,
        "portal/keys/list.html",
        {
            "filter_form": filter_form,
            "page": _paginate(request, keys),
            "blocks": key_selectors.block_list(organization=organization)[:20],
            "now": timezone.now(),
        },
    )


@org_member_required(Permission.KEYS_MANAGE)
def key_rotate(request: HttpRequest, key_id) -> HttpResponse:
    """GET asks for the grace period; POST issues the successor and shows its secret once."""
    key = key_selectors.key_get(organization=request.organization, key_id=key_id)
    form = _bound(request, KeyRotateForm)
    if request.method == "POST" and form.is_valid():
        try:
            new_key, secret = key_services.key_rotate(
                actor=Actor.from_request(request), key=key, **form.cleaned_data
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            return _render_secret(
                request,
                "portal/keys/issued.html",
                {"key": new_key, "secret": secret, "replaced": new_key.replaces},
            )
    return render(request, "portal/keys/rotate.html", {"key": key, "form": form})


@org_member_required(Permission.KEYS_MANAGE)
def key_revoke(request: HttpRequest, key_id) -> HttpResponse:
    """GET is the confirmation page; only the POST revokes (at once, on the next call)."""
    key = key_selectors.key_get(organization=request.organization, key_id=key_id)
    if request.method == "POST":
        key_services.key_revoke(actor=Actor.from_request(request), key=key)
        messages.success(request, f"Key {key.prefix}… is revoked: calls with it are refused.")
        return redirect(
            "portal:project_detail", slug=request.organization.slug, project_id=key.project_id
        )
    return render(request, "portal/keys/revoke.html", {"key": key})


BLOCK_DURATIONS = {
    "3600": timedelta(hours=1),
    "86400": timedelta(days=1),
    "604800": timedelta(days=7),
    "": None,
}


@org_member_required(Permission.KEYS_MANAGE)
def key_block(request: HttpRequest, key_id) -> HttpResponse:
    """Customers stop one of their own keys for a while (or until lifted) without revoking it."""
    key = key_selectors.key_get(organization=request.organization, key_id=key_id)
    if request.method == "POST":
        duration = BLOCK_DURATIONS.get(request.POST.get("duration", ""))
        key_services.block_create(
            actor=Actor.from_request(request),
            api_key=key,
            reason_code="customer_request",
            reason=request.POST.get("reason", "")[:500],
            expires_at=timezone.now() + duration if duration else None,
        )
        messages.success(request, f"Key {key.prefix}… is blocked: calls with it are refused.")
        return redirect("portal:key_list", slug=request.organization.slug)
    return render(request, "portal/keys/block.html", {"key": key})


@org_member_required(Permission.KEYS_MANAGE)
@require_POST
def block_lift(request: HttpRequest, block_id) -> HttpResponse:
    """Customers lift the blocks they made; the operator's and automatic ones are not theirs."""
    block = key_selectors.block_get(organization=request.organization, block_id=block_id)
    if block.reason_code != "customer_request":
        raise PermissionDenied("Only the operator can lift this block.")
    key_services.block_lift(actor=Actor.from_request(request), block=block)
    messages.success(request, "The block is lifted.")
    return redirect("portal:key_list", slug=request.organization.slug)


# --- Members and invitations -------------------------------------------------------------
def _render_members(request: HttpRequest, invite_form: InvitationForm) -> HttpResponse:
    organization = request.organization
    return render(
        request,
        "portal/members/list.html",
        {
            "members": selectors.member_list(organization=organization),
            "invitations": selectors.invitation_list_pending(organization=organization),
            "invite_form": invite_form,
            "role_choices": ROLE_CHOICES,
        },
    )


@org_member_required(Permission.MEMBERS_MANAGE)
def member_list(request: HttpRequest) -> HttpResponse:
    return _render_members(request, InvitationForm(acting_role=request.membership.role))


@org_member_required(Permission.MEMBERS_MANAGE)
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST, acting_role=request.membership.role)
    if form.is_valid():
        try:
            invitation, _link_secret = services.invitation_create(
                actor=Actor.from_request(request),
                acting_role=request.membership.role,
                organization=request.organization,
                **form.cleaned_data,
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            messages.success(request, f"Invitation e-mailed to {invitation.email}.")
            return redirect("portal:member_list", slug=request.organization.slug)
    return _render_members(request, form)


@org_member_required(Permission.MEMBERS_MANAGE)
@require_POST
def member_change_role(request: HttpRequest, membership_id) -> HttpResponse:
    membership = selectors.member_get(
        organization=request.organization, membership_id=membership_id
    )
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
    else:
        try:
            services.membership_change_role(
                actor=Actor.from_request(request),
                acting_role=request.membership.role,
                membership=membership,
                role=form.cleaned_data["role"],
            )
        except TollgateError as error:
            _report(request, error)
        else:
            role = form.cleaned_data["role"]
            messages.success(request, f"{membership.user.email} is now {role}.")
    return redirect("portal:member_list", slug=request.organization.slug)


@org_member_required(Permission.MEMBERS_MANAGE)
@require_POST
def member_remove(request: HttpRequest, membership_id) -> HttpResponse:
    membership = selectors.member_get(
        organization=request.organization, membership_id=membership_id
    )
    try:
        services.membership_remove(
            actor=Actor.from_request(request),
            acting_role=request.membership.role,
            membership=membership,
        )
    except TollgateError as error:
        _report(request, error)
        return redirect("portal:member_list", slug=request.organization.slug)
    if membership.user_id == request.user.id:
        # The members page is no longer theirs to see.
        messages.success(request, f"You left {request.organization.name}.")
        return redirect("portal:home")
    messages.success(request, f"{membership.user.email} was removed.")
    return redirect("portal:member_list", slug=request.organization.slug)


@org_member_required(Permission.MEMBERS_MANAGE)
@require_POST
def member_invitation_revoke(request: HttpRequest, invitation_id) -> HttpResponse:
    invitation = selectors.invitation_get(
        organization=request.organization, invitation_id=invitation_id
    )
    services.invitation_revoke(actor=Actor.from_request(request), invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} is revoked.")
    return redirect("portal:member_list", slug=request.organization.slug)


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows which org invites whom; POST joins. Dead or unknown links are 404 alike."""
    invitation = selectors.invitation_find_usable(raw_token=token)
    if invitation is None:
        raise Http404("This invitation does not exist, has expired or was used.")
    if request.method == "POST":
        try:
            membership = services.invitation_accept(
                actor=Actor.from_request(request), raw_token=token, user=request.user
            )
        except NotFound as error:
            raise Http404(error.detail) from error
        except TollgateError as error:
            _report(request, error)
        else:
            organization = membership.organization
            messages.success(request, f"Welcome to {organization.name}.")
            return redirect("portal:dashboard", slug=organization.slug)
    return render(
        request,
        "portal/invitations/accept.html",
        {
            "invitation": invitation,
            "addressed_to_user": invitation.email.lower() == request.user.email.lower(),
        },
    )


# --- Management API tokens ---------------------------------------------------------------
@org_member_required(Permission.TOKENS_MANAGE)
def token_list(request: HttpRequest) -> HttpResponse:
    """Lists the org's tokens; POST creates one and shows its secret once."""
    form = _bound(request, TokenCreateForm)
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.token_create(
                actor=Actor.from_request(request),
                kind=ApiToken.Kind.ORG,
                organization=request.organization,
                **form.cleaned_data,
            )
        except TollgateError as error:
            _report(request, error, form)
        else:
            return _render_secret(
                request, "portal/tokens/issued.html", {"token": token, "secret": secret}
            )
    tokens = selectors.token_list(organization=request.organization)
    return render(request, "portal/tokens/list.html", {"tokens": tokens, "form": form})


@org_member_required(Permission.TOKENS_MANAGE)
@require_POST
def token_revoke(request: HttpRequest, token_id) -> HttpResponse:
    token = selectors.token_get(organization=request.organization, token_id=token_id)
    services.token_revoke(actor=Actor.from_request(request), token=token)
    messages.success(request, f"Token {token.name} is revoked.")
    return redirect("portal:token_list", slug=request.organization.slug)


# --- Audit log ---------------------------------------------------------------------------
@org_member_required(Permission.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries = selectors.audit_log_list(organization=request.organization, **form.filters())
    return render(
        request, "portal/audit/list.html", {"form": form, "page": _paginate(request, entries)}
    )


@org_member_required(Permission.AUDIT_VIEW)
def audit_log_csv(request: HttpRequest) -> HttpResponse:
    """Streams every matching row, in the API's CSV columns, however long the log is."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(
            "Invalid filters:\n" + form.errors.as_text(), content_type="text/plain"
        )
    entries = selectors.audit_log_list(organization=request.organization, **form.filters())
    return audit_log_csv_response(entries, f"{request.organization.slug}-audit-log.csv")
