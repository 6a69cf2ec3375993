"""The OAuth endpoints under /o/: consent (our page on django-oauth-toolkit's authorization
view), token, revocation and introspection (the toolkit's, introspection narrowed to the
client's own tokens)."""

import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

from django import forms
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.views import AuthorizationView
from oauthlib.common import Request as OauthlibRequest

from common.errors import TollgateError
from marketplace import installs
from marketplace.models import App, AppToken, Install
from portal.audit import Actor


class _NotIssued(Exception):
    """The provider issued no code: the consent's transaction rolls back."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri


class ConsentForm(AllowForm):
    """The toolkit's hidden fields, plus the project the app is installed into."""

    project = forms.ChoiceField(required=False)

    def __init__(self, *args, projects=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.projects = {str(project.pk): project for project in projects}
        self.fields["project"].choices = [
            (str(project.pk), f"{project.organization.name} / {project.name}")
            for project in projects
        ]


class InstallAuthorizationView(AuthorizationView):
    """`GET /o/authorize/`: the consent page shows exactly the scopes the app asked for, and
    which of them the org would not grant (not approved by the operator, not in its plan).
    Allowing creates or renews the install and issues the code for the scopes granted."""

    template_name = "marketplace/consent.html"
    form_class = ConsentForm

    def get(self, request, *args, **kwargs):
        # Always the consent page: the toolkit's `approval_prompt=auto` would issue a code
        # straight away for the asked scopes, skipping the install and the narrowing.
        if "approval_prompt" in request.GET:
            request.GET = request.GET.copy()
            del request.GET["approval_prompt"]
        return super().get(request, *args, **kwargs)

    def _unavailable(self, description: str):
        return self.render_to_response(
            {"error": {"error": "invalid_request", "description": description}}, status=400
        )

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["projects"] = installs.install_projects(user=self.request.user)
        return kwargs

    def _app(self, client_id: str | None) -> App | None:
        if not client_id:
            return None
        return (
            App.objects.select_related("partner")
            .filter(oauth_application__client_id=client_id)
            .first()
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        client_id = kwargs.get("client_id") or (form and form["client_id"].value())
        scope_text = (form and form["scope"].value()) or " ".join(kwargs.get("scopes") or [])
        asked = sorted(set(scope_text.split()))
        app = self._app(client_id)
        projects = list(form.projects.values()) if form else []
        organizations = {project.organization_id: project.organization for project in projects}
        context.update(
            app=app,
            asked=asked,
            projects=projects,
            decisions_by_org=[
                (
                    organization,
                    installs.scope_decisions(app=app, organization=organization, asked=asked),
                )
                for organization in organizations.values()
            ]
            if app
            else [],
            existing={
                install.organization_id: install
                for install in Install.objects.filter(
                    app=app, organization_id__in=organizations, uninstalled_at__isnull=True
                ).select_related("project")
            }
            if app
            else {},
        )
        return context

    def form_valid(self, form):
        client_id = form.cleaned_data["client_id"]
        app = self._app(client_id)
        redirect_uri = form.cleaned_data.get("redirect_uri") or ""
        if app is None or not app.oauth_application.redirect_uri_allowed(redirect_uri):
            # A tampered form: no redirect anywhere (not even access_denied) but to a URI
            # the operator approved for this app.
            return self._unavailable("This app or its redirect URI is not known.")
        if not form.cleaned_data.get("allow"):
            return super().form_valid(form)  # the toolkit answers access_denied
        project = form.projects.get(form.cleaned_data.get("project") or "")
        if project is None:
            form.add_error("project", "Choose the project to install the app into.")
            return self.form_invalid(form)
        credentials = {
            "client_id": client_id,
            "redirect_uri": form.cleaned_data.get("redirect_uri"),
            "response_type": form.cleaned_data.get("response_type"),
            "state": form.cleaned_data.get("state"),
        }
        for name in ("code_challenge", "code_challenge_method", "nonce"):
            if form.cleaned_data.get(name):
                credentials[name] = form.cleaned_data[name]
        try:
            with transaction.atomic():
                install, granted = installs.install_authorize(
                    actor=Actor.from_request(self.request),
                    app=app,
                    project=project,
                    asked=form.cleaned_data.get("scope", "").split(),
                )
                credentials["tollgate_install_id"] = str(install.pk)
                uri, _headers, _body, _status = self.create_authorization_response(
                    request=self.request,
                    scopes=" ".join(granted),
                    credentials=credentials,
                    allow=True,
                )
                if "error" in parse_qs(urlsplit(uri).query):
                    # oauthlib answered with an error redirect (a tampered form: no PKCE,
                    # another response type): no code, so no install and no charge either.
                    raise _NotIssued(uri)
        except _NotIssued as refused:
            return self.redirect(refused.uri, app.oauth_application)
        except TollgateError as error:
            form.add_error("project" if error.field != "scope" else None, error.detail)
            return self.form_invalid(form)
        except OAuthToolkitError as error:
            return self.error_response(error, app.oauth_application)
        self.success_url = uri
        return self.redirect(uri, app.oauth_application)


@method_decorator(csrf_exempt, name="dispatch")
class AppIntrospectView(View):
    """RFC 7662 for apps: a client authenticates with its own id and secret and learns about
    its own tokens only; another client's token is simply `active: false`."""

    http_method_names = ["post"]  # RFC 7662 §2.1; a token never travels in a URL

    def http_method_not_allowed(self, request, *args, **kwargs):
        return JsonResponse(
            {"error": "invalid_request", "error_description": "Introspect with POST."},
            status=405,
            headers={"Allow": "POST"},
        )

    def post(self, request, *args, **kwargs):
        core = get_oauthlib_core()
        oauth_request = OauthlibRequest(
            request.build_absolute_uri(),
            request.method,
            urlencode(core.extract_body(request)),
            core.extract_headers(request),
        )
        if not core.server.request_validator.authenticate_client(oauth_request):
            return JsonResponse(
                {"error": "invalid_client", "error_description": "Authenticate as the app."},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="tollgate"'},
            )
        self.client = oauth_request.client
        return self._introspect(request.POST.get("token"))

    def _introspect(self, token_value: str | None) -> JsonResponse:
        if not token_value:
            return JsonResponse(
                {"error": "invalid_request", "error_description": "Token parameter is missing."},
                status=400,
            )
        checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
        token = (
            AccessToken.objects.select_related("application")
            .filter(token_checksum=checksum, application=self.client)
            .first()
        )
        if token is None or not token.is_valid():
            return JsonResponse({"active": False})
        data = {
            "active": True,
            "scope": token.scope,
            "client_id": token.application.client_id,
            "exp": int(token.expires.timestamp()),
            "token_type": "Bearer",
        }
        linked = AppToken.objects.filter(access_token=token).select_related("install").first()
        if linked is not None:
            data["tollgate_install"] = str(linked.install_id)
            data["tollgate_organization"] = str(linked.install.organization_id)
            data["tollgate_project"] = str(linked.install.project_id)
        data["iat"] = int((token.created or timezone.now()).timestamp())
        return JsonResponse(data)
