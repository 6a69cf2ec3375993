"""Writes for tenancy: organizations, memberships, invitations, projects and API tokens.

Each function is keyword-only, takes the acting `actor`, validates, changes state and
writes its audit row in one transaction. Views, API views, admin and commands all call these.
"""

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from common.secrets import hash_secret, make_secret
from portal.audit import Actor, audit_record
from portal.models import ApiToken, Invitation, Membership, Organization, Project, User
from portal.roles import Role, can_grant_role
from portal.scopes import OPERATOR_SCOPES, ORG_SCOPES

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
# "o/authorize/" and its siblings are the OAuth endpoints (marketplace/oauth_urls.py).
RESERVED_SLUGS = frozenset(
    {"new", "admin", "api", "accounts", "static", "settings", "orgs"}
    | {"authorize", "token", "revoke_token", "introspect", "userinfo", "applications"}
)
INVITATION_LIFETIME = timedelta(days=7)
TOKEN_PREFIXES = {ApiToken.Kind.ORG: "tg_org_", ApiToken.Kind.OPERATOR: "tg_op_"}


def _clean_name(name: str | None, *, field: str = "name", max_length: int = 200) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInput("This field may not be blank.", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"At most {max_length} characters.", field=field)
    return cleaned


# --- Users -------------------------------------------------------------------------------
def _clean_email(email: str | None) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as error:
        raise InvalidInput("Enter a valid e-mail address.", field="email") from error
    return email


def user_get_or_create(*, email: str) -> tuple[User, bool]:
    """For operator scripts: the account with this e-mail, created without a password if new."""
    email = _clean_email(email)
    user = User.objects.filter(email__iexact=email).first()
    if user:
        return user, False
    user = User.objects.create_user(email=email)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user, True


# --- Organizations -----------------------------------------------------------------------
def organization_create(
    *, actor: Actor, name: str, owner: User, slug: str | None = None
) -> Organization:
    name = _clean_name(name)
    slug = (slug or slugify(name)[:50]).strip("-").lower()
    if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS:
        raise InvalidInput(
            "Use 1 to 50 lowercase letters, digits and hyphens, not starting or ending with one.",
            field="slug",
            code="invalid_slug",
        )
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, slug=slug)
            Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
            audit_record(
                actor=actor,
                action="organization.created",
                organization=organization,
                target=organization,
                changes={"name": name, "slug": slug, "owner": owner.email},
            )
    except IntegrityError as error:
        raise Conflict(
            f"The organization slug '{slug}' is taken.", code="slug_taken", field="slug"
        ) from error
    return organization


# --- Memberships -------------------------------------------------------------------------
def _owner_count(organization: Organization) -> int:
    return organization.memberships.filter(role=Role.OWNER).count()


def membership_change_role(
    *, actor: Actor, acting_role: str, membership: Membership, role: str
) -> Membership:
    if role not in Role._value2member_map_:
        raise InvalidInput(f"Unknown role '{role}'.", field="role")
    if not can_grant_role(acting_role, role) or (
        membership.role == Role.OWNER and acting_role != Role.OWNER
    ):
        raise PermissionDenied("Your role cannot grant or change that role.")
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if (
            locked.role == Role.OWNER
            and role != Role.OWNER
            and _owner_count(locked.organization) == 1
        ):
            raise Conflict("An organization needs at least one owner.", code="last_owner")
        old_role = locked.role
        locked.role = role
        locked.save(update_fields=["role"])
        audit_record(
            actor=actor,
            action="membership.role_changed",
            organization=locked.organization,
            target=locked,
            changes={"user": locked.user.email, "role": [old_role, role]},
        )
    return locked


def membership_remove(*, actor: Actor, acting_role: str, membership: Membership) -> None:
    if membership.role == Role.OWNER and acting_role != Role.OWNER:
        raise PermissionDenied("Only an owner can remove an owner.")
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER and _owner_count(locked.organization) == 1:
            raise Conflict("An organization needs at least one owner.", code="last_owner")
        audit_record(
            actor=actor,
            action="membership.removed",
            organization=locked.organization,
            target=locked,
            changes={"user": locked.user.email, "role": locked.role},
        )
        locked.delete()


# --- Invitations -------------------------------------------------------------------------
def invitation_create(
    *, actor: Actor, acting_role: str, organization: Organization, email: str, role: str
) -> tuple[Invitation, str]:
    """Creates the invitation and e-mails its link; returns it with the link's secret."""
    email = _clean_email(email)
    if role not in Role._value2member_map_:
        raise InvalidInput(f"Unknown role '{role}'.", field="role")
    if not can_grant_role(acting_role, role):
        raise PermissionDenied("Your role cannot invite with that role.")
    if organization.memberships.filter(user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member.", code="already_member", field="email")
    raw_token = make_secret("tg_inv_", 32)
    with transaction.atomic():
        organization.invitations.filter(email=email, status=Invitation.Status.PENDING).update(
            status=Invitation.Status.REVOKED
        )
        invitation = Invitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            token_hash=hash_secret(raw_token),
            invited_by=actor.user,
            expires_at=timezone.now() + INVITATION_LIFETIME,
        )
        audit_record(
            actor=actor,
            action="invitation.created",
            organization=organization,
            target=invitation,
            changes={"email": email, "role": role},
        )
        link = f"{settings.SITE_URL.rstrip('/')}/invitations/{raw_token}/"
        context = {"invitation": invitation, "link": link, "inviter": actor.label}
        transaction.on_commit(
            lambda: send_mail(
                subject=f"[Tollgate] You are invited to {organization.name}",
                message=render_to_string("portal/email/invitation.txt", context),
                from_email=None,
                recipient_list=[email],
            )
        )
    return invitation, raw_token


def invitation_revoke(*, actor: Actor, invitation: Invitation) -> None:
    with transaction.atomic():
        updated = Invitation.objects.filter(
            pk=invitation.pk, status=Invitation.Status.PENDING
        ).update(status=Invitation.Status.REVOKED)
        if updated:
            audit_record(
                actor=actor,
                action="invitation.revoked",
                organization=invitation.organization,
                target=invitation,
                changes={"email": invitation.email},
            )


def invitation_accept(*, actor: Actor, raw_token: str, user: User) -> Membership:
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("organization")
            .filter(token_hash=hash_secret(raw_token))
            .first()
        )
        if invitation is None or not invitation.is_usable:
            raise NotFound("This invitation does not exist, has expired or was used.")
        if invitation.email.lower() != user.email.lower():
            raise PermissionDenied(
                f"This invitation was sent to {invitation.email}; sign in with that address."
            )
        membership, created = Membership.objects.get_or_create(
            organization=invitation.organization, user=user, defaults={"role": invitation.role}
        )
        invitation.status = Invitation.Status.ACCEPTED
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["status", "accepted_at"])
        audit_record(
            actor=actor,
            action="invitation.accepted",
            organization=invitation.organization,
            target=membership,
            changes={"email": user.email, "role": membership.role, "new_member": created},
        )
    return membership


# --- Projects ----------------------------------------------------------------------------
def project_create(
    *, actor: Actor, organization: Organization, name: str, description: str = ""
) -> Project:
    name = _clean_name(name)
    description = (description or "").strip()
    if len(description) > 2000:
        raise InvalidInput("At most 2000 characters.", field="description")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                organization=organization, name=name, description=description
            )
            audit_record(
                actor=actor,
                action="project.created",
                organization=organization,
                target=project,
                changes={"name": name, "description": description},
            )
    except IntegrityError as error:
        raise Conflict(
            f"A project named '{name}' already exists.", code="project_name_taken", field="name"
        ) from error
    return project


# --- Management API tokens ---------------------------------------------------------------
def token_create(
    *,
    actor: Actor,
    kind: str,
    name: str,
    scopes: list[str],
    organization: Organization | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Creates a management token; returns it with the secret, which is never shown again."""
    if kind not in ApiToken.Kind.values:
        raise InvalidInput(f"Unknown token kind '{kind}'.", field="kind")
    if (kind == ApiToken.Kind.ORG) != (organization is not None):
        raise InvalidInput("Org tokens need an organization; operator tokens must not have one.")
    name = _clean_name(name)
    allowed = ORG_SCOPES if kind == ApiToken.Kind.ORG else OPERATOR_SCOPES
    if scopes == ["all"]:
        scopes = list(allowed)
    unknown = sorted(set(scopes) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"Unknown scopes for an {kind} token: {', '.join(unknown)}.",
            field="scopes",
            code="invalid_scope",
        )
    if not scopes:
        raise InvalidInput("Grant at least one scope.", field="scopes")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", field="expires_at")
    raw = make_secret(TOKEN_PREFIXES[kind], 40)
    with transaction.atomic():
        token = ApiToken.objects.create(
            kind=kind,
            organization=organization,
            name=name,
            prefix=raw[: len(TOKEN_PREFIXES[kind]) + 6],
            token_hash=hash_secret(raw),
            scopes=sorted(set(scopes)),
            created_by=actor.user,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action="token.created",
            organization=organization,
            target=token,
            changes={"name": name, "kind": kind, "scopes": token.scopes},
        )
    return token, raw


def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db()
        if updated:
            audit_record(
                actor=actor,
                action="token.revoked",
                organization=token.organization,
                target=token,
                changes={"name": token.name},
            )
    return token
