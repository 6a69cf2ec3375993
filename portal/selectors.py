"""Reads for tenancy, each scoped to one organization."""

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from common.lookups import get_or_not_found
from common.secrets import hash_secret
from portal.models import (
    ApiToken,
    AuditLogEntry,
    Invitation,
    Membership,
    Organization,
    Project,
    User,
)


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization")


def membership_get(*, user: User, organization_slug: str) -> Membership | None:
    return memberships_for_user(user=user).filter(organization__slug=organization_slug).first()


def member_list(*, organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("created_at")


def project_list(*, organization: Organization) -> QuerySet[Project]:
    return Project.objects.filter(organization=organization)


def project_get(*, organization: Organization, project_id) -> Project:
    return get_or_not_found(project_list(organization=organization), project_id, "project")


def token_list(*, organization: Organization) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(organization=organization, kind=ApiToken.Kind.ORG)


def audit_log_list(
    *,
    organization: Organization,
    action: str | None = None,
    actor: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditLogEntry]:
    entries = AuditLogEntry.objects.filter(organization=organization)
    if action:
        entries = entries.filter(action__startswith=action)
    if actor:
        entries = entries.filter(actor_label__icontains=actor)
    if target_id:
        entries = entries.filter(target_id=target_id)
    if since:
        entries = entries.filter(created_at__gte=since)
    if until:
        entries = entries.filter(created_at__lt=until)
    return entries


def member_get(*, organization: Organization, membership_id) -> Membership:
    return get_or_not_found(member_list(organization=organization), membership_id, "member")


def invitation_list_pending(*, organization: Organization) -> QuerySet[Invitation]:
    """Invitations still waiting for an answer; expired ones are left out, as they are dead."""
    return organization.invitations.filter(
        status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
    ).select_related("invited_by")


def invitation_get(*, organization: Organization, invitation_id) -> Invitation:
    return get_or_not_found(organization.invitations.all(), invitation_id, "invitation")


def invitation_find_usable(*, raw_token: str) -> Invitation | None:
    """The pending, unexpired invitation a link's secret opens, looked up by its hash."""
    invitation = (
        Invitation.objects.select_related("organization")
        .filter(token_hash=hash_secret(raw_token))
        .first()
    )
    return invitation if invitation is not None and invitation.is_usable else None


def token_get(*, organization: Organization, token_id) -> ApiToken:
    return get_or_not_found(token_list(organization=organization), token_id, "API token")
