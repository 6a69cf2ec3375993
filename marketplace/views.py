"""The partner program page of an organization: apply, see the decision, edit the profile.

Owners and admins (MEMBERS_MANAGE) run it: it commits the organization and says where
its money goes.
"""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from common.errors import TollgateError
from marketplace import apps_selectors, apps_services, selectors, services
from marketplace.forms import AppForm, LogoForm, PartnerForm
from marketplace.models import CATEGORIES
from marketplace.oauth_clients import oauth_client_secret_reset
from marketplace.screenshots import screenshot_list
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.forms import add_service_error
from portal.roles import Permission


@org_member_required(Permission.MEMBERS_MANAGE)
def partner_page(request: HttpRequest) -> HttpResponse:
    partner = selectors.partner_for(organization=request.organization)
    form = PartnerForm(request.POST or None, instance=partner)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.partner_apply(
                actor=Actor.from_request(request),
                organization=request.organization,
                **{name: form.cleaned_data[name] for name in services.APPLICATION_FIELDS},
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            if partner is None or partner.status == "rejected":
                messages.success(request, "Application sent. The operator reviews it.")
            else:
                messages.success(request, f"{saved.display_name} saved.")
            return redirect("marketplace:partner", slug=request.organization.slug)
    apps = apps_selectors.app_list(partner=partner) if partner else []
    return render(
        request,
        "marketplace/partner.html",
        {"partner": partner, "form": form, "apps": apps, "nav_section": "partner"},
    )


# --- Apps --------------------------------------------------------------------------------
APP_NAV = {"nav_section": "partner"}


def _approved_partner(request: HttpRequest):
    partner = selectors.partner_for(organization=request.organization)
    if partner is None or partner.status != "approved":
        raise Http404("Only an approved partner has apps.")
    return partner


def _app_form(request: HttpRequest, initial: dict | None = None) -> AppForm:
    return AppForm(
        request.POST or None,
        initial=initial,
        categories=CATEGORIES,
        scopes=sorted(apps_services.known_scopes()),
    )


def _app_fields(form: AppForm) -> dict:
    return {name: form.cleaned_data[name] for name in apps_services.APP_FIELDS}


@org_member_required(Permission.MEMBERS_MANAGE)
def app_create(request: HttpRequest) -> HttpResponse:
    partner = _approved_partner(request)
    form = _app_form(request)
    if request.method == "POST" and form.is_valid():
        try:
            app = apps_services.app_create(
                actor=Actor.from_request(request), partner=partner, **_app_fields(form)
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            messages.success(request, f"{app.name} created. Add a logo, then submit it for review.")
            return redirect("marketplace:app_detail", slug=request.organization.slug, app_id=app.id)
    return render(request, "marketplace/app_form.html", {**APP_NAV, "form": form})


@org_member_required(Permission.MEMBERS_MANAGE)
def app_detail(request: HttpRequest, app_id) -> HttpResponse:
    partner = selectors.partner_for(organization=request.organization)
    app = apps_selectors.app_get(partner=partner, app_id=app_id)
    initial = {name: getattr(app, name) for name in apps_services.APP_FIELDS}
    initial["redirect_uris"] = "\n".join(app.redirect_uris)
    form = _app_form(request, initial)
    if request.method == "POST" and form.is_valid():
        try:
            app = apps_services.app_update(
                actor=Actor.from_request(request), app=app, **_app_fields(form)
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            messages.success(request, f"{app.name} saved.")
            return redirect("marketplace:app_detail", slug=request.organization.slug, app_id=app.id)
    return render(
        request,
        "marketplace/app_form.html",
        {
            **APP_NAV,
            "form": form,
            "app": app,
            "logo_form": LogoForm(),
            "screenshots": screenshot_list(app=app),
        },
    )


@require_POST
@org_member_required(Permission.MEMBERS_MANAGE)
def app_logo(request: HttpRequest, app_id) -> HttpResponse:
    partner = selectors.partner_for(organization=request.organization)
    app = apps_selectors.app_get(partner=partner, app_id=app_id)
    form = LogoForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose an image file.")
    else:
        upload = form.cleaned_data["logo"]
        data = upload.read(apps_services.MAX_LOGO_BYTES + 1)
        try:
            apps_services.app_logo_set(actor=Actor.from_request(request), app=app, data=data)
        except TollgateError as error:
            messages.error(request, error.detail)
        else:
            messages.success(request, "Logo saved.")
    return redirect("marketplace:app_detail", slug=request.organization.slug, app_id=app.id)


@require_POST
@org_member_required(Permission.MEMBERS_MANAGE)
def app_submit(request: HttpRequest, app_id) -> HttpResponse:
    partner = selectors.partner_for(organization=request.organization)
    app = apps_selectors.app_get(partner=partner, app_id=app_id)
    try:
        apps_services.app_submit(actor=Actor.from_request(request), app=app)
    except TollgateError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"{app.name} is in review. You will hear of the decision.")
    return redirect("marketplace:app_detail", slug=request.organization.slug, app_id=app.id)


@org_member_required(Permission.MEMBERS_MANAGE)
def app_logo_image(request: HttpRequest, app_id) -> HttpResponse:
    partner = selectors.partner_for(organization=request.organization)
    app = apps_selectors.app_get(partner=partner, app_id=app_id)
    if not app.logo:
        raise Http404("No logo yet.")
    response = HttpResponse(bytes(app.logo), content_type=app.logo_content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=60"
    return response


@org_member_required(Permission.MEMBERS_MANAGE)
def app_credentials(request: HttpRequest, app_id) -> HttpResponse:
    """The app's OAuth client: its id, and a new secret on request (shown once)."""
    partner = selectors.partner_for(organization=request.organization)
    app = apps_selectors.app_get(partner=partner, app_id=app_id)
    secret = None
    if request.method == "POST":
        try:
            secret = oauth_client_secret_reset(actor=Actor.from_request(request), app=app)
        except TollgateError as error:
            messages.error(request, error.detail)
    response = render(
        request,
        "marketplace/credentials.html",
        {
            **APP_NAV,
            "app": app,
            "client": app.oauth_application,
            "secret": secret,
            "endpoints": {
                name: request.build_absolute_uri(f"/o/{name}/")
                for name in ("authorize", "token", "revoke_token", "introspect")
            },
        },
    )
    response["Cache-Control"] = "no-store"  # the page may carry the secret
    return response
