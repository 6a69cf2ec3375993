"""Writes for API keys: issue, rotate with a grace period, revoke, mark used."""

import ipaddress
import json
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, InvalidInput
from common.redis import get_redis
from common.secrets import seal, unseal
from keys.format import (
    key_environment,
    key_generate,
    key_hash,
    key_is_well_formed,
    key_prefix,
)
from keys.keycache import publish_key_change_on_commit
from keys.models import ApiKey, ApiProduct, ApiVersion, Block, Endpoint
from keys.openapi import default_group, parse_openapi
from portal.audit import Actor, audit_record
from portal.models import Project
from webhooks.catalog import timestamp
from webhooks.services import emit

VERSION_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")
MAX_SCOPES = 50
MAX_CIDRS = 100
MAX_GRACE_PERIOD = timedelta(days=30)
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _clean_scopes(scopes: list[str] | None) -> list[str]:
    if scopes is None:
        return ["read"]
    if not isinstance(scopes, list) or len(scopes) > MAX_SCOPES:
        raise InvalidInput(f"Give a list of at most {MAX_SCOPES} scopes.", field="scopes")
    for scope in scopes:
        if not isinstance(scope, str) or not SCOPE_PATTERN.match(scope):
            raise InvalidInput(
                f"'{scope}' is not a scope: use endpoint group names such as read, write, bulk.",
                field="scopes",
                code="invalid_scope",
            )
    if not scopes:
        raise InvalidInput("Grant at least one scope.", field="scopes")
    return sorted(set(scopes))


def _clean_cidrs(cidrs: list[str] | None) -> list[str]:
    if not cidrs:
        return []
    if not isinstance(cidrs, list) or len(cidrs) > MAX_CIDRS:
        raise InvalidInput(
            f"Give a list of at most {MAX_CIDRS} CIDR blocks.", field="allowed_cidrs"
        )
    cleaned = []
    for cidr in cidrs:
        try:
            cleaned.append(str(ipaddress.ip_network(str(cidr).strip(), strict=False)))
        except ValueError as error:
            raise InvalidInput(
                f"'{cidr}' is not an IPv4 or IPv6 CIDR block.",
                field="allowed_cidrs",
                code="invalid_cidr",
            ) from error
    return sorted(set(cleaned))


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if timezone.is_naive(expires_at):
        raise InvalidInput("Give the expiry with a time zone (UTC: ...Z).", field="expires_at")
    if expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", field="expires_at")
    return expires_at


TEST_KEY_PURPOSE = "test-key-for-docs"


def _new_key_row(*, raw_key: str, **fields) -> ApiKey:
    # Test keys are also kept sealed so the docs can fill the reader's own sandbox key into
    # samples (docs/keys.md); live keys exist only as their hash.
    sealed = seal(raw_key, purpose=TEST_KEY_PURPOSE) if fields["environment"] == "test" else ""
    return ApiKey.objects.create(
        key_hash=key_hash(raw_key), prefix=key_prefix(raw_key), secret_encrypted=sealed, **fields
    )


def test_key_secret(key: ApiKey) -> str | None:
    """The secret of a test key, for the docs samples of its own organization's members."""
    if key.environment != ApiKey.Environment.TEST or not key.secret_encrypted:
        return None
    return unseal(key.secret_encrypted, purpose=TEST_KEY_PURPOSE)


def _public_fields(key: ApiKey) -> dict:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "environment": key.environment,
        "scopes": key.scopes,
        "allowed_cidrs": key.allowed_cidrs,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "project": str(key.project_id),
    }


def _event_data(key: ApiKey, **extra) -> dict:
    """A key as webhook events describe it: the prefix, never the secret."""
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "environment": key.environment,
        "project": str(key.project_id),
        **extra,
    }


def key_create(
    *,
    actor: Actor,
    project: Project,
    name: str,
    environment: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    allowed_cidrs: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Issues a key; returns the row and the secret, which exists nowhere else afterwards."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("Give the key a name of 1 to 200 characters.", field="name")
    if environment not in ApiKey.Environment.values:
        raise InvalidInput("Environment must be 'test' or 'live'.", field="environment")
    raw_key = key_generate(environment)
    with transaction.atomic():
        key = _new_key_row(
            raw_key=raw_key,
            organization_id=project.organization_id,
            project=project,
            name=name,
            environment=environment,
            scopes=_clean_scopes(scopes),
            allowed_cidrs=_clean_cidrs(allowed_cidrs),
            expires_at=_clean_expiry(expires_at),
            created_by=actor.user,
        )
        audit_record(
            actor=actor,
            action="key.created",
            organization=project.organization,
            target=key,
            changes=_public_fields(key),
        )
        emit(
            organization=key.organization_id,
            type="key.created",
            environment=key.environment,
            data=_event_data(
                key,
                scopes=key.scopes,
                allowed_cidrs=key.allowed_cidrs,
                expires_at=timestamp(key.expires_at),
                created_at=timestamp(key.created_at),
            ),
        )
    return key, raw_key


def key_rotate(
    *, actor: Actor, key: ApiKey, grace_period_seconds: int | None = None
) -> tuple[ApiKey, str]:
    """Issues a successor; the old key keeps working until its grace period ends."""
    if grace_period_seconds is None:
        grace_period_seconds = settings.KEY_ROTATION_DEFAULT_GRACE_SECONDS
    if (
        isinstance(grace_period_seconds, bool)
        or not isinstance(grace_period_seconds, int)
        or not 0 <= grace_period_seconds <= MAX_GRACE_PERIOD.total_seconds()
    ):
        raise InvalidInput(
            f"grace_period_seconds must be a whole number from 0 to "
            f"{int(MAX_GRACE_PERIOD.total_seconds())}.",
            field="grace_period_seconds",
        )
    now = timezone.now()
    with transaction.atomic():
        old = (
            ApiKey.objects.select_for_update()
            .select_related("project__organization")
            .get(pk=key.pk)
        )
        if old.status_at(now) != ApiKey.Status.ACTIVE:
            raise Conflict(
                f"Only an active key can be rotated; this one is {old.status_at(now)}.",
                code="key_not_active",
            )
        raw_key = key_generate(old.environment)
        new = _new_key_row(
            raw_key=raw_key,
            organization_id=old.organization_id,
            project=old.project,
            name=old.name,
            environment=old.environment,
            scopes=old.scopes,
            allowed_cidrs=old.allowed_cidrs,
            expires_at=old.expires_at,
            created_by=actor.user,
        )
        old.grace_ends_at = now + timedelta(seconds=grace_period_seconds)
        old.replaced_by = new
        old.save(update_fields=["grace_ends_at", "replaced_by"])
        publish_key_change_on_commit(get_redis(), old.key_hash)
        audit_record(
            actor=actor,
            action="key.rotated",
            organization=old.project.organization,
            target=old,
            changes={
                "old_prefix": old.prefix,
                "new_key_id": str(new.id),
                "new_prefix": new.prefix,
                "grace_ends_at": old.grace_ends_at.isoformat(),
            },
        )
        emit(
            organization=old.organization_id,
            type="key.rotated",
            environment=old.environment,
            data=_event_data(
                old,
                new_key={"id": str(new.id), "prefix": new.prefix},
                grace_ends_at=timestamp(old.grace_ends_at),
            ),
        )
    return new, raw_key


def key_revoke(*, actor: Actor, key: ApiKey) -> ApiKey:
    """Revokes at once (idempotent: revoking a revoked key changes nothing)."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().select_related("organization").get(pk=key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            publish_key_change_on_commit(get_redis(), locked.key_hash)
            audit_record(
                actor=actor,
                action="key.revoked",
                organization=locked.organization,
                target=locked,
                changes={"prefix": locked.prefix},
            )
            emit(
                organization=locked.organization_id,
                type="key.revoked",
                environment=locked.environment,
                data=_event_data(locked, revoked_at=timestamp(locked.revoked_at)),
            )
    return locked


def app_key_issue(
    *,
    project: Project,
    raw_key: str,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    app_id,
) -> ApiKey:
    """The twin key of a marketplace app's access token, minted by the OAuth provider: the
    gate checks it like any live key. Not audited or announced per token (an app refreshes
    every hour); the install that allowed it is."""
    if not key_is_well_formed(raw_key) or key_environment(raw_key) != ApiKey.Environment.LIVE:
        raise InvalidInput("An app token must be a well-formed live key.", code="key_malformed")
    return _new_key_row(
        raw_key=raw_key,
        organization_id=project.organization_id,
        project=project,
        name=name[:200],
        environment=ApiKey.Environment.LIVE,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        app_id=app_id,
    )


def app_keys_revoke(*, key_ids) -> int:
    """Revokes app tokens' twin keys at once (every gate process drops them within its
    key-cache check interval); returns how many were still active."""
    now = timezone.now()
    with transaction.atomic():
        keys = list(
            ApiKey.objects.select_for_update()
            .filter(pk__in=list(key_ids), app_id__isnull=False, revoked_at__isnull=True)
            .order_by("pk")
        )
        ApiKey.objects.filter(pk__in=[key.pk for key in keys]).update(revoked_at=now)
        client = get_redis()
        for key in keys:
            publish_key_change_on_commit(client, key.key_hash)
    return len(keys)


def key_mark_used(*, key: ApiKey, now: datetime | None = None) -> None:
    """Records last use, at most once a minute per key so busy keys do not write per call."""
    now = now or timezone.now()
    if key.last_used_at and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now


# --- API products, versions and endpoints -------------------------------------------------
def api_version_create(
    *, actor: Actor, product_code: str, version: str, document, private: bool | None = None
) -> ApiVersion:
    """Imports one version of a product from its OpenAPI document: all of it, or nothing.

    The product is created on first upload (named after the document's title). Each
    operation becomes an Endpoint whose group is its x-tollgate-group, else read for
    GET/HEAD/OPTIONS and write for the rest; the operator may override groups in admin.
    """
    if not isinstance(product_code, str) or not SCOPE_PATTERN.match(product_code):
        raise InvalidInput("product is a lowercase code such as 'documents'.", field="product")
    if not isinstance(version, str) or not VERSION_LABEL.match(version):
        # It becomes part of URLs (docs, sandbox, collections): letters, digits, . _ - only.
        raise InvalidInput(
            "version is a short label such as 'v1' or '2024-06-01': letters, digits, '.', "
            "'_' and '-', at most 32 characters.",
            field="version",
            code="invalid_version",
        )
    parsed = parse_openapi(document)
    with transaction.atomic():
        product, _created = ApiProduct.objects.get_or_create(
            code=product_code, defaults={"name": parsed.title[:200]}
        )
        if private is not None and product.private != private:
            product.private = private
            product.save(update_fields=["private"])
        if product.versions.filter(version=version).exists():
            raise Conflict(
                f"{product_code} {version} exists; upload a new version.",
                code="api_version_exists",
                field="version",
            )
        api_version = ApiVersion.objects.create(
            product=product,
            version=version,
            title=parsed.title[:200],
            base_path=parsed.base_path,
            openapi=document,
            openapi_text=json.dumps(document),
        )
        seen: set[tuple[str, str]] = set()
        endpoints = []
        for operation in parsed.operations:
            if (operation.method, operation.path_template) in seen:
                continue
            seen.add((operation.method, operation.path_template))
            endpoints.append(
                Endpoint(
                    api_version=api_version,
                    method=operation.method,
                    path_template=operation.path_template,
                    operation_id=operation.operation_id,
                    summary=operation.summary,
                    tags=list(operation.tags),
                    group=operation.group or default_group(operation.method),
                    group_source=(
                        Endpoint.GroupSource.DOCUMENT
                        if operation.group
                        else Endpoint.GroupSource.DEFAULT
                    ),
                    deprecated=operation.deprecated,
                    sunset_at=operation.sunset_at,
                )
            )
        Endpoint.objects.bulk_create(endpoints)
        audit_record(
            actor=actor,
            action="api_version.created",
            organization=None,
            target=api_version,
            changes={
                "product": product_code,
                "version": version,
                "endpoints": len(endpoints),
                "base_path": parsed.base_path,
            },
        )
    return api_version


_UNSET = object()


def endpoint_update(
    *,
    actor: Actor,
    endpoint: Endpoint,
    group: str | None = None,
    meter_code: str | None = None,
    sunset_at=_UNSET,
) -> Endpoint:
    """The operator's overrides: the group, the meter calls also count on, a sunset date."""
    changes = {}
    if sunset_at is not _UNSET and sunset_at != endpoint.sunset_at:
        changes["sunset_at"] = [str(endpoint.sunset_at), str(sunset_at)]
        endpoint.sunset_at = sunset_at
    if group is not None and group != endpoint.group:
        if not SCOPE_PATTERN.match(group):
            raise InvalidInput("A group is a lowercase name such as 'bulk'.", field="group")
        changes["group"] = [endpoint.group, group]
        endpoint.group = group
        endpoint.group_source = Endpoint.GroupSource.OPERATOR
    if meter_code is not None and meter_code != endpoint.meter_code:
        changes["meter_code"] = [endpoint.meter_code, meter_code]
        endpoint.meter_code = meter_code
    if changes:
        with transaction.atomic():
            endpoint.save(update_fields=["group", "group_source", "meter_code", "sunset_at"])
            audit_record(
                actor=actor,
                action="endpoint.updated",
                organization=None,
                target=endpoint,
                changes=changes,
            )
    return endpoint


# --- Blocks (GATE-5) ----------------------------------------------------------------------
BLOCKS_EPOCH_KEY = "tg:{keys}:blocks-epoch"


def _publish_blocks_change() -> None:
    transaction.on_commit(lambda: get_redis().incr(BLOCKS_EPOCH_KEY))


def block_create(
    *,
    actor: Actor,
    reason_code: str,
    api_key: ApiKey | None = None,
    ip_network: str | None = None,
    reason: str = "",
    expires_at: datetime | None = None,
) -> Block:
    """Blocks a key (its org's or the operator's decision) or an IP range (the operator's)."""
    if (api_key is None) == (not ip_network):
        raise InvalidInput("Block either a key or an IP range.", field="api_key")
    if reason_code not in Block.Reason.values:
        raise InvalidInput(
            f"reason_code is one of {', '.join(Block.Reason.values)}.", field="reason_code"
        )
    network = ""
    if ip_network:
        network = _clean_cidrs([ip_network])[0]
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", field="expires_at")
    with transaction.atomic():
        block = Block.objects.create(
            organization_id=api_key.organization_id if api_key else None,
            api_key=api_key,
            ip_network=network,
            reason_code=reason_code,
            reason=(reason or "")[:2000],
            created_by=actor.label[:255],
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action="block.created",
            organization=api_key.organization if api_key else None,
            target=block,
            changes={
                "key": api_key.prefix if api_key else None,
                "ip": network,
                "reason_code": reason_code,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        _publish_blocks_change()
    return block


def block_lift(*, actor: Actor, block: Block) -> Block:
    with transaction.atomic():
        if Block.objects.filter(pk=block.pk, lifted_at__isnull=True).update(
            lifted_at=timezone.now()
        ):
            audit_record(
                actor=actor,
                action="block.lifted",
                organization=block.organization,
                target=block,
                changes={},
            )
            _publish_blocks_change()
    block.refresh_from_db()
    return block
