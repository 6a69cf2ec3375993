"""Installs (ACC-6, MKT-3): an organization's consent to an app, the app's tokens, and
uninstalling, which revokes every token at once.

The OAuth provider (django-oauth-toolkit, marketplace/oauth.py) calls in here: consent
creates or renews the install, each access token it mints gets a twin live key in the
install's project (keys.services.app_key_issue) which the gate checks like any key, so app
calls are limited, metered and billed to the installing org and attributed to the app.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from billing.entitlements import entitlements_for
from common.errors import Conflict, InvalidInput, PermissionDenied
from common.lookups import get_or_not_found
from keys.services import app_key_issue, app_keys_revoke
from marketplace.models import App, AppToken, Install, InstallGrant, Partner
from marketplace.paid_apps import app_charge_attach, app_charge_detach, app_charge_renew
from portal.audit import Actor, audit_record
from portal.models import Membership, Organization, Project
from portal.roles import Role
from webhooks.catalog import timestamp
from webhooks.services import emit

# Who may install and uninstall: installing hands an outside party the org's API.
INSTALL_ROLES = frozenset({Role.OWNER, Role.ADMIN})


@dataclass(frozen=True)
class ScopeDecision:
    """One scope an app asked for, and whether this org would grant it."""

    scope: str
    approved: bool  # the operator approved it with the listing
    in_plan: bool  # the org's plan includes the endpoint group

    @property
    def granted(self) -> bool:
        return self.approved and self.in_plan


def installable_app(app: App | None) -> App:
    """Only a listed app of an approved partner can be installed or authorized."""
    if (
        app is None
        or app.state != App.State.LISTED
        or app.partner.status != Partner.Status.APPROVED
    ):
        raise Conflict("This app is not available in the marketplace.", code="app_not_listed")
    return app


def install_usable(install: Install | None) -> bool:
    """May this install still get tokens? Not once uninstalled, nor while the operator has
    suspended the app or its partner (an app back in review after an edit keeps working)."""
    return (
        install is not None
        and install.active
        and install.app.state != App.State.SUSPENDED
        and install.app.partner.status == Partner.Status.APPROVED
    )


def scope_decisions(*, app: App, organization: Organization, asked: list[str]) -> list:
    """The consent screen's list: each scope asked, approved by the operator or not, in the
    org's plan or not. Granted = asked ∩ approved ∩ plan."""
    plan_groups = set(entitlements_for(organization.pk).get("endpoint_groups", []))
    approved = set(app.approved_scopes)
    return [
        ScopeDecision(scope=scope, approved=scope in approved, in_plan=scope in plan_groups)
        for scope in sorted(set(asked))
    ]


def install_projects(*, user) -> list[Project]:
    """The projects this user may install an app into: of orgs they own or administer."""
    organizations = Membership.objects.filter(user=user, role__in=INSTALL_ROLES).values(
        "organization_id"
    )
    return list(
        Project.objects.filter(organization_id__in=organizations)
        .select_related("organization")
        .order_by("organization__name", "name")
    )


def _role(user, organization: Organization) -> str | None:
    return (
        Membership.objects.filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )


def _install_data(install: Install) -> dict:
    return {
        "id": str(install.id),
        "app": {"id": str(install.app_id), "slug": install.app.slug, "name": install.app.name},
        "organization": str(install.organization_id),
        "project": str(install.project_id),
        "scopes": list(install.scopes),
    }


def _emit(install: Install, type: str, **extra) -> None:
    """To the installing org and to the app's partner (each sees it in its own endpoints)."""
    data = {**_install_data(install), **extra}
    emit(organization=install.organization_id, type=type, data=data)
    partner_org = install.app.partner.organization_id
    if partner_org != install.organization_id:
        emit(organization=partner_org, type=type, data=data)


def install_authorize(
    *, actor: Actor, app: App, project: Project, asked: list[str]
) -> tuple[Install, list[str]]:
    """The org's admin consented: the install (new, or renewed with the scopes of this
    consent) and the scopes granted. Raises if nothing would be granted."""
    if actor.user is None or _role(actor.user, project.organization) not in INSTALL_ROLES:
        raise PermissionDenied(
            "Only owners and admins of the organization install apps.", code="install_not_allowed"
        )
    organization = project.organization
    with transaction.atomic():
        locked = installable_app(
            App.objects.select_for_update().select_related("partner").filter(pk=app.pk).first()
        )
        decisions = scope_decisions(app=locked, organization=organization, asked=asked)
        granted = [decision.scope for decision in decisions if decision.granted]
        if not granted:
            raise InvalidInput(
                "None of the scopes this app asks for is available to your organization.",
                field="scope",
                code="no_scopes_granted",
            )
        install = (
            Install.objects.select_for_update()
            .filter(app=locked, organization=organization, uninstalled_at__isnull=True)
            .first()
        )
        reinstalled = install is not None
        if install is None:
            install = Install.objects.create(
                app=locked,
                organization=organization,
                project=project,
                scopes=granted,
                installed_by=actor.user,
            )
            app_charge_attach(actor=actor, install=install)
        else:
            if install.project_id != project.pk:
                raise Conflict(
                    f"{locked.name} is already installed in project {install.project.name}; "
                    "uninstall it first to move it.",
                    code="already_installed",
                )
            if not set(install.scopes) <= set(granted):
                # Consent narrowed: the tokens issued under the wider one stop now; the
                # app gets new ones from this consent's code.
                _revoke_tokens(install)
            install.scopes = granted
            install.save(update_fields=["scopes"])
            app_charge_renew(actor=actor, install=install)
        install.app = locked
        audit_record(
            actor=actor,
            action="app.reinstalled" if reinstalled else "app.installed",
            organization=organization,
            target=install,
            changes={"app": locked.slug, "project": str(project.pk), "scopes": granted},
        )
        _emit(
            install,
            "app.installed",
            reinstalled=reinstalled,
            installed_at=timestamp(install.installed_at),
        )
    return install, granted


def install_uninstall(*, actor: Actor, install: Install) -> Install:
    """Ends the install and revokes every token of it at once: the twin keys are refused
    by the gate from the next call, refresh tokens and unused codes stop working."""
    with transaction.atomic():
        locked = (
            Install.objects.select_for_update()
            .select_related("app__partner", "organization")
            .get(pk=install.pk)
        )
        if locked.uninstalled_at is not None:
            return locked  # idempotent
        if actor.user is not None and _role(actor.user, locked.organization) not in INSTALL_ROLES:
            raise PermissionDenied(
                "Only owners and admins of the organization uninstall apps.",
                code="install_not_allowed",
            )
        locked.uninstalled_at = timezone.now()
        locked.uninstalled_by = actor.user
        locked.save(update_fields=["uninstalled_at", "uninstalled_by"])
        _revoke_tokens(locked)
        app_charge_detach(actor=actor, install=locked)
        audit_record(
            actor=actor,
            action="app.uninstalled",
            organization=locked.organization,
            target=locked,
            changes={"app": locked.app.slug},
        )
        _emit(locked, "app.uninstalled", uninstalled_at=timestamp(locked.uninstalled_at))
    return locked


def _revoke_tokens(install: Install) -> None:
    _tokens_revoke(
        tokens=AppToken.objects.filter(install=install),
        grants=InstallGrant.objects.filter(install=install),
    )


def _tokens_revoke(*, tokens, grants) -> int:
    """Access tokens deleted, refresh tokens revoked, unused codes deleted, twin keys
    revoked: nothing the app holds works any more. Returns the twin keys revoked."""
    tokens = list(tokens)
    access_ids = [token.access_token_id for token in tokens if token.access_token_id]
    refresh_ids = [token.refresh_token_id for token in tokens if token.refresh_token_id]
    RefreshToken.objects.filter(pk__in=refresh_ids, revoked__isnull=True).update(
        revoked=timezone.now(), access_token=None
    )
    AccessToken.objects.filter(pk__in=access_ids).delete()
    Grant.objects.filter(pk__in=grants.values("grant_id")).delete()
    return app_keys_revoke(key_ids=[token.api_key_id for token in tokens])


def app_access_revoke(*, apps) -> int:
    """The operator suspended these apps (or their partner): every token they hold stops
    working at once. Installs stay (the customers' choice); once listed again, the app
    takes each customer through consent again to get new tokens."""
    active = AppToken.objects.filter(install__app__in=apps, api_key__revoked_at__isnull=True)
    return _tokens_revoke(tokens=active, grants=InstallGrant.objects.filter(install__app__in=apps))


# --- Called by the OAuth provider (marketplace/oauth.py) ------------------------------------
def install_for_code(*, code: str, application) -> Install | None:
    found = (
        InstallGrant.objects.filter(grant__code=code, grant__application=application)
        .select_related("install__app__partner", "install__project")
        .first()
    )
    return found.install if found else None


def install_for_refresh_token(refresh_token: RefreshToken | None) -> Install | None:
    if refresh_token is None:
        return None
    found = (
        AppToken.objects.filter(refresh_token=refresh_token)
        .select_related("install__app__partner", "install__project")
        .first()
    )
    return found.install if found else None


def install_grant_record(*, code: str, application, install_id) -> None:
    grant = Grant.objects.get(code=code, application=application)
    InstallGrant.objects.create(grant=grant, install_id=install_id)


def app_token_record(
    *, install: Install, raw_token: str, access_token: AccessToken, scopes: list[str]
) -> AppToken:
    """The access token just minted, and its twin key with the install's scopes (never more
    than the install grants, whatever the token request said)."""
    existing = AppToken.objects.filter(access_token=access_token).first()
    if existing is not None:  # the provider handed back a token it had already issued
        return existing
    key = app_key_issue(
        project=install.project,
        raw_key=raw_token,
        name=f"{install.app.name} (marketplace app)",
        scopes=[scope for scope in scopes if scope in install.scopes],
        expires_at=access_token.expires,
        app_id=install.app_id,
    )
    refresh = RefreshToken.objects.filter(access_token=access_token).first()
    return AppToken.objects.create(
        install=install, access_token=access_token, refresh_token=refresh, api_key=key
    )


def app_token_revoked(*, access_token_id) -> int:
    """The provider deleted an access token (revoked, rotated by a refresh, or its family
    revoked on a replayed refresh token): its twin key is revoked with it."""
    key_ids = AppToken.objects.filter(access_token_id=access_token_id).values_list(
        "api_key_id", flat=True
    )
    return app_keys_revoke(key_ids=list(key_ids))


# --- Reads -------------------------------------------------------------------------------
def installs_for_organization(*, organization: Organization):
    return (
        Install.objects.filter(organization=organization, uninstalled_at__isnull=True)
        .select_related("app", "project")
        .order_by("app__name")
    )


def install_get(*, organization: Organization, install_id) -> Install:
    return get_or_not_found(
        installs_for_organization(organization=organization), install_id, "install"
    )


def organization_has_installed(*, organization_id, app: App) -> bool:
    """Ever installed (active or not): who may review the app."""
    return Install.objects.filter(organization_id=organization_id, app=app).exists()
