"""Reads for API keys, always scoped to one organization, and the key check the gate builds on."""

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from common.lookups import get_or_not_found
from keys.format import key_hash, key_is_well_formed
from keys.models import ApiKey, ApiVersion, Endpoint
from keys.routing import Router, without_base_path
from portal.models import Organization


def key_status_q(status: str, now: datetime) -> Q:
    """The database form of ApiKey.status_at, so lists can filter by status."""
    revoked = Q(revoked_at__isnull=False, revoked_at__lte=now)
    expired = Q(expires_at__lte=now) | Q(grace_ends_at__lte=now)
    if status == ApiKey.Status.REVOKED:
        return revoked
    if status == ApiKey.Status.EXPIRED:
        return ~revoked & expired
    if status == ApiKey.Status.ROTATING:
        return ~revoked & ~expired & Q(grace_ends_at__gt=now)
    return ~revoked & ~expired & Q(grace_ends_at__isnull=True)


def key_list(
    *,
    organization: Organization,
    project_id: str | None = None,
    environment: str | None = None,
    status: str | None = None,
) -> QuerySet[ApiKey]:
    # App tokens' twin keys belong to their install (the org's installed apps page), not here.
    keys = ApiKey.objects.filter(organization=organization, app_id__isnull=True).select_related(
        "project"
    )
    if project_id:
        keys = keys.filter(project_id=project_id)
    if environment:
        keys = keys.filter(environment=environment)
    if status:
        keys = keys.filter(key_status_q(status, timezone.now()))
    return keys


def key_get(*, organization: Organization, key_id) -> ApiKey:
    return get_or_not_found(key_list(organization=organization), key_id, "API key")


@dataclass(frozen=True)
class KeyCheck:
    allowed: bool
    code: str
    key: ApiKey | None = None


def key_check(*, raw_key: str, ip: str | None = None, now: datetime | None = None) -> KeyCheck:
    """Is this key usable right now, from this address? Codes are the gate's reason codes."""
    if not key_is_well_formed(raw_key or ""):
        return KeyCheck(False, "key_malformed")
    key = ApiKey.objects.filter(key_hash=key_hash(raw_key)).select_related("project").first()
    if key is None:
        return KeyCheck(False, "key_invalid")
    status = key.status_at(now or timezone.now())
    if status == ApiKey.Status.REVOKED:
        return KeyCheck(False, "key_revoked", key)
    if status == ApiKey.Status.EXPIRED:
        return KeyCheck(False, "key_expired", key)
    if key.allowed_cidrs and not ip_in_cidrs(ip, key.allowed_cidrs):
        return KeyCheck(False, "ip_not_allowed", key)
    return KeyCheck(True, "ok", key)


def ip_in_cidrs(ip: str | None, cidrs: list[str]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr) for cidr in cidrs)


# --- API products and endpoints ---------------------------------------------------------
def endpoint_router(api_version: ApiVersion) -> Router[Endpoint]:
    return Router(
        (endpoint.method, endpoint.path_template, endpoint)
        for endpoint in api_version.endpoints.all()
    )


def endpoint_match(api_version: ApiVersion, method: str, path: str) -> Endpoint | None:
    """The endpoint a call to `path` hits; the version's base path may be included or not."""
    return endpoint_router(api_version).match(
        method, without_base_path(path, api_version.base_path)
    )


def block_list(*, organization: Organization) -> QuerySet:
    """The org's key blocks, active first: customers see why and until when (GATE-5)."""
    from keys.models import Block

    return (
        Block.objects.filter(organization=organization)
        .select_related("api_key")
        .order_by("lifted_at", "-created_at")
    )


def block_get(*, organization: Organization, block_id):
    return get_or_not_found(block_list(organization=organization), block_id, "block")
