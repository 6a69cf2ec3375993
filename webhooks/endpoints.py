"""Writes for webhook endpoints: create, update, disable/enable, delete, rotate the secret,
send a test event, and re-deliver or replay events (HOOK-2, HOOK-5).

Every write is audited in its own transaction. New deliveries are plain `pending` rows with
`next_attempt_at = now`: the delivery worker attempts any such row, and a nudge after commit
only makes it start sooner. A re-delivery or a replay is a new Delivery of the *same* Event,
so the `webhook-id` header (the event id) stays the same and receivers can deduplicate.
"""

import ipaddress
import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from common.errors import Conflict, InvalidInput
from portal.audit import Actor, audit_record
from portal.models import Organization
from webhooks import catalog
from webhooks.models import Delivery, Event, WebhookEndpoint
from webhooks.secrets import decrypt, encrypt, fingerprint, new_secret
from webhooks.services import nudge
from webhooks.ssrf import TargetRefused, address_is_public, url_check

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_DISABLED_REASON_LENGTH = 200
MAX_EVENT_TYPES = 100
ROTATION_OVERLAP = timedelta(hours=24)
REPLAY_WINDOW = timedelta(days=14)
# A replay of two busy weeks can create many deliveries; the first ones are queued at once,
# the rest are picked up by the worker's sweep of due `pending` rows (same contract).
REPLAY_NUDGE_LIMIT = 500
REPLAY_BATCH_SIZE = 1000
PING_TYPE = "ping"
PING_MESSAGE = "A test event from Tollgate: if you can read this, your endpoint works."

# Host names that can only mean this machine or its private network. The delivery worker
# refuses them after DNS anyway (webhooks.ssrf); refusing them when the endpoint is saved
# tells the customer now instead of after a failed delivery.
PRIVATE_HOST_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
PRIVATE_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
URL_INVALID = "webhook_url_invalid"


def allow_private_targets() -> bool:
    """Development and self-hosted setups may deliver to private addresses and plain http."""
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_TARGETS", False))


# --- Validation -------------------------------------------------------------------------
def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, including the legacy IPv4 forms that resolvers
    accept (`127.1`, `0x7f000001`, `2130706433`), so none of them passes as a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_obviously_private_host(host: str) -> bool:
    """True for loopback and private literals in any spelling, localhost and names that
    only resolve inside a private network (`intranet`, `printer.local`). No DNS lookup."""
    host = host.lower().rstrip(".")
    address = _literal_ip(host)
    if address is not None:
        return not address_is_public(address)
    if host in PRIVATE_HOST_NAMES or host.endswith(PRIVATE_HOST_SUFFIXES):
        return True
    return "." not in host  # a single-label name resolves only on a private network


def clean_url(url, *, environment: str) -> str:
    """Shape (http/https, a host, no credentials, at most 2,000 characters), then the SSRF
    policy of webhooks.ssrf that needs no DNS: unless WEBHOOKS_ALLOW_PRIVATE_TARGETS, live
    endpoints use https and no endpoint names a private or loopback host."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("Give the endpoint's URL.", field="url", code=URL_INVALID)
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(
            f"The URL is longer than {MAX_URL_LENGTH} characters.", field="url", code=URL_INVALID
        )
    if any(character.isspace() or not character.isprintable() for character in url):
        raise InvalidInput(
            "The URL contains spaces or control characters.", field="url", code=URL_INVALID
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as error:
        raise InvalidInput("This is not a valid URL.", field="url", code=URL_INVALID) from error
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise InvalidInput(
            "Give an http:// or https:// URL with a host name.", field="url", code=URL_INVALID
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "Leave credentials out of the URL: verify the webhook-signature header instead.",
            field="url",
            code=URL_INVALID,
        )
    if parts.fragment:
        raise InvalidInput("A webhook URL has no #fragment.", field="url", code=URL_INVALID)
    try:
        url_check(url, environment=environment)
    except TargetRefused as error:
        raise InvalidInput(error.detail, field="url", code=error.code) from error
    if not allow_private_targets() and is_obviously_private_host(host):
        raise InvalidInput(
            "Webhook URLs may not point at localhost or a private network.",
            field="url",
            code="webhook_target_private",
        )
    return url


def clean_environment(environment) -> str:
    if environment not in WebhookEndpoint.Environment.values:
        raise InvalidInput(
            "Environment must be 'test' or 'live'.", field="environment", code="invalid_environment"
        )
    return environment


def clean_description(description) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or "\x00" in description:
        raise InvalidInput("The description must be text.", field="description")
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(
            f"Keep the description to {MAX_DESCRIPTION_LENGTH} characters.", field="description"
        )
    return description


def clean_event_types(event_types) -> list[str]:
    """Known event types only, checked against the catalog as it is now; empty means all."""
    if event_types is None:
        return []
    if not isinstance(event_types, list | tuple) or len(event_types) > MAX_EVENT_TYPES:
        raise InvalidInput(
            f"Give a list of at most {MAX_EVENT_TYPES} event types.", field="event_types"
        )
    known = catalog.CATALOG
    for name in event_types:
        if not isinstance(name, str) or name not in known:
            raise InvalidInput(
                f"'{name}' is not an event type: see GET /api/v1/event-types.",
                field="event_types",
                code="unknown_event_type",
            )
    return sorted(set(event_types))


def _clean_reason(reason) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str) or "\x00" in reason:
        raise InvalidInput("The reason must be text.", field="reason")
    reason = reason.strip()
    if len(reason) > MAX_DISABLED_REASON_LENGTH:
        raise InvalidInput(
            f"Keep the reason to {MAX_DISABLED_REASON_LENGTH} characters.", field="reason"
        )
    return reason


def secret_fingerprint(endpoint: WebhookEndpoint) -> str:
    """The secret's short label, or "unreadable" when it no longer decrypts (SECRET_KEY
    changed): the endpoint then needs a rotation, and listing it must still work."""
    try:
        return fingerprint(decrypt(endpoint.secret_encrypted))
    except InvalidToken:
        return "unreadable"


def previous_secret_expires_at(endpoint: WebhookEndpoint) -> datetime | None:
    """Until when the rotated-out secret still signs, or None when only one secret does."""
    expires_at = endpoint.previous_secret_expires_at
    if not endpoint.previous_secret_encrypted or expires_at is None:
        return None
    return expires_at if expires_at > timezone.now() else None


def _public_fields(endpoint: WebhookEndpoint) -> dict:
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "environment": endpoint.environment,
        "status": endpoint.status,
    }


def _locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    # FOR NO KEY UPDATE: a change to the row must not hold up the commit of every event
    # emitted to it (their foreign-key check takes FOR KEY SHARE, which this allows).
    return WebhookEndpoint.objects.select_for_update(no_key=True).get(pk=endpoint.pk)


def _nudge_on_commit(deliveries: list[Delivery], limit: int | None = None) -> None:
    ids = [str(delivery.pk) for delivery in deliveries[:limit]]
    if ids:
        transaction.on_commit(lambda: nudge(ids))


# --- Endpoints --------------------------------------------------------------------------
def webhook_endpoint_create(
    *,
    actor: Actor,
    organization: Organization,
    url: str,
    environment: str = WebhookEndpoint.Environment.LIVE,
    event_types: list[str] | None = None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Creates an endpoint; returns it and its signing secret, shown to the caller once."""
    environment = clean_environment(environment)
    url = clean_url(url, environment=environment)
    secret = new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            organization=organization,
            url=url,
            environment=environment,
            event_types=clean_event_types(event_types),
            description=clean_description(description),
            secret_encrypted=encrypt(secret),
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.created",
            organization=organization,
            target=endpoint,
            changes={**_public_fields(endpoint), "secret_fingerprint": fingerprint(secret)},
        )
    return endpoint, secret


def webhook_endpoint_update(
    *,
    actor: Actor,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    environment: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Changes the fields given (None leaves a field as it is; `event_types=[]` means all).
    The URL is checked again whenever it or the environment changes."""
    with transaction.atomic():
        endpoint = _locked(endpoint)
        before = _public_fields(endpoint)
        if environment is not None:
            endpoint.environment = clean_environment(environment)
        if url is not None or environment is not None:
            endpoint.url = clean_url(
                url if url is not None else endpoint.url, environment=endpoint.environment
            )
        if event_types is not None:
            endpoint.event_types = clean_event_types(event_types)
        if description is not None:
            endpoint.description = clean_description(description)
        after = _public_fields(endpoint)
        changed = {name: value for name, value in after.items() if before[name] != value}
        if changed:
            endpoint.save()
            if "environment" in changed:
                # Pending events of the other environment must not reach the URL now
                # configured for this one.
                Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
                    status=Delivery.Status.FAILED,
                    lease_until=None,
                    last_error="environment_changed",
                    finished_at=timezone.now(),
                )
            audit_record(
                actor=actor,
                action="webhook_endpoint.updated",
                organization=endpoint.organization,
                target=endpoint,
                changes={"before": {name: before[name] for name in changed}, "after": changed},
            )
    return endpoint


def webhook_endpoint_disable(
    *, actor: Actor, endpoint: WebhookEndpoint, reason: str | None = None
) -> WebhookEndpoint:
    """Stops deliveries to the endpoint and fails its pending ones, as the worker's automatic
    disable does (a replay sends them again once it is enabled). Disabling a disabled
    endpoint changes nothing."""
    reason = _clean_reason(reason) or "Disabled by a member of the organization."
    now = timezone.now()
    with transaction.atomic():
        endpoint = _locked(endpoint)
        if endpoint.status == WebhookEndpoint.Status.DISABLED:
            return endpoint
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = reason
        endpoint.disabled_at = now
        endpoint.save(update_fields=["status", "disabled_reason", "disabled_at", "updated_at"])
        Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED,
            lease_until=None,
            last_error="endpoint_disabled",
            finished_at=now,
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.disabled",
            organization=endpoint.organization,
            target=endpoint,
            changes={"reason": reason},
        )
    return endpoint


def webhook_endpoint_enable(*, actor: Actor, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Starts deliveries again and forgets the failure streak. The URL is checked again:
    a live endpoint saved while private targets were allowed is not enabled once they are not."""
    with transaction.atomic():
        endpoint = _locked(endpoint)
        if endpoint.status == WebhookEndpoint.Status.ENABLED:
            return endpoint
        clean_url(endpoint.url, environment=endpoint.environment)
        previous_reason = endpoint.disabled_reason
        endpoint.status = WebhookEndpoint.Status.ENABLED
        endpoint.disabled_reason = ""
        endpoint.disabled_at = None
        endpoint.failing_since = None
        endpoint.save(
            update_fields=[
                "status",
                "disabled_reason",
                "disabled_at",
                "failing_since",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.enabled",
            organization=endpoint.organization,
            target=endpoint,
            changes={"previous_disabled_reason": previous_reason},
        )
    return endpoint


def webhook_endpoint_delete(*, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Deletes the endpoint with its deliveries and their log; the events stay."""
    with transaction.atomic():
        endpoint = _locked(endpoint)
        audit_record(
            actor=actor,
            action="webhook_endpoint.deleted",
            organization=endpoint.organization,
            target=endpoint,
            changes=_public_fields(endpoint),
        )
        endpoint.delete()


def webhook_endpoint_rotate_secret(
    *, actor: Actor, endpoint: WebhookEndpoint
) -> tuple[WebhookEndpoint, str]:
    """Issues a new secret; the one it replaces keeps signing beside it for 24 hours, so a
    receiver can switch without dropping a delivery. A second rotation inside those 24 hours
    retires the oldest secret at once: only the current and the one before it ever sign."""
    secret = new_secret()
    now = timezone.now()
    with transaction.atomic():
        endpoint = _locked(endpoint)
        previous_fingerprint = secret_fingerprint(endpoint)
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.secret_encrypted = encrypt(secret)
        endpoint.save(
            update_fields=[
                "secret_encrypted",
                "previous_secret_encrypted",
                "previous_secret_expires_at",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.secret_rotated",
            organization=endpoint.organization,
            target=endpoint,
            changes={
                "secret_fingerprint": fingerprint(secret),
                "previous_secret_fingerprint": previous_fingerprint,
                "previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat(),
            },
        )
    return endpoint, secret


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if endpoint.status != WebhookEndpoint.Status.ENABLED:
        raise Conflict("The endpoint is disabled: enable it first.", code="endpoint_disabled")


def webhook_endpoint_send_test(*, actor: Actor, endpoint: WebhookEndpoint) -> Delivery:
    """Records a `ping` event addressed to this endpoint alone and queues its delivery."""
    now = timezone.now()
    event_type = catalog.event_type_get(PING_TYPE)
    version = event_type.version if event_type is not None else 1
    event = Event(
        organization_id=endpoint.organization_id,
        type=PING_TYPE,
        version=version,
        environment=endpoint.environment,
        created_at=now,
    )
    # The same envelope as webhooks.services.emit, so a ping looks like any other event.
    event.payload = {
        "id": event.id,
        "type": PING_TYPE,
        "version": version,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "organization": str(endpoint.organization_id),
        "environment": endpoint.environment,
        "data": {"message": PING_MESSAGE},
    }
    with transaction.atomic():
        endpoint = _locked(endpoint)
        _require_enabled(endpoint)
        event.save(force_insert=True)
        delivery = Delivery.objects.create(
            event=event, endpoint=endpoint, next_attempt_at=now, manual=True
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.test_sent",
            organization=endpoint.organization,
            target=endpoint,
            changes={"event_id": event.id},
        )
        _nudge_on_commit([delivery])
    return delivery


# --- Re-delivery and replay ---------------------------------------------------------------
def _addressed_to(event: Event) -> list:
    """The endpoints a ping was sent to: a test event is for its endpoint alone."""
    return list(event.deliveries.values_list("endpoint_id", flat=True).distinct())


def event_redeliver(
    *, actor: Actor, event: Event, endpoint: WebhookEndpoint | None = None
) -> list[Delivery]:
    """Sends the event again (the same id, so the same `webhook-id`) to `endpoint`, or to
    every enabled endpoint of the event's organization and environment that wants it."""
    now = timezone.now()
    with transaction.atomic():
        if endpoint is not None:
            endpoint = _locked(endpoint)
            _require_enabled(endpoint)
            if endpoint.environment != event.environment:
                raise Conflict(
                    f"This is a {event.environment} event and the endpoint is "
                    f"{endpoint.environment}.",
                    code="environment_mismatch",
                )
            targets = [endpoint]
        else:
            targets = [
                candidate
                for candidate in WebhookEndpoint.objects.filter(
                    organization_id=event.organization_id,
                    status=WebhookEndpoint.Status.ENABLED,
                    environment=event.environment,
                ).order_by("pk")
                if candidate.wants(event.type)
            ]
            if event.type == PING_TYPE:
                addressed = set(_addressed_to(event))
                targets = [candidate for candidate in targets if candidate.pk in addressed]
        if not targets:
            raise Conflict(
                "No enabled endpoint of this environment subscribes to this event.",
                code="no_matching_endpoint",
            )
        deliveries = Delivery.objects.bulk_create(
            [
                Delivery(event=event, endpoint=target, next_attempt_at=now, manual=True)
                for target in targets
            ]
        )
        audit_record(
            actor=actor,
            action="event.redelivered",
            organization=targets[0].organization,
            target=event,
            changes={"endpoints": [str(target.pk) for target in targets]},
        )
        _nudge_on_commit(deliveries)
    return deliveries


def replay_events(*, endpoint: WebhookEndpoint, since: datetime) -> QuerySet[Event]:
    """The events a replay since `since` sends to this endpoint, oldest first, once each."""
    events = Event.objects.filter(
        organization_id=endpoint.organization_id,
        environment=endpoint.environment,
        created_at__gte=since,
    )
    if endpoint.event_types:
        events = events.filter(type__in=endpoint.event_types)
    # Someone else's test ping is not this endpoint's history.
    sent_here = Delivery.objects.filter(event=OuterRef("pk"), endpoint=endpoint)
    events = events.filter(~Q(type=PING_TYPE) | Exists(sent_here))
    return events.order_by("created_at", "id")


def webhook_endpoint_replay(*, actor: Actor, endpoint: WebhookEndpoint, since: datetime) -> int:
    """Queues one new delivery per event since `since` (at most 14 days back) that the
    endpoint wants, whatever happened to earlier deliveries; returns how many."""
    now = timezone.now()
    if not isinstance(since, datetime) or timezone.is_naive(since):
        raise InvalidInput("Give `since` with a time zone (UTC: ...Z).", field="since")
    if since < now - REPLAY_WINDOW:
        raise InvalidInput(
            f"A replay goes back at most {REPLAY_WINDOW.days} days.",
            field="since",
            code="replay_window_exceeded",
        )
    if since > now:
        raise InvalidInput("`since` is in the future.", field="since", code="invalid_since")
    with transaction.atomic():
        endpoint = _locked(endpoint)
        _require_enabled(endpoint)
        event_ids = list(replay_events(endpoint=endpoint, since=since).values_list("pk", flat=True))
        deliveries: list[Delivery] = []
        for start in range(0, len(event_ids), REPLAY_BATCH_SIZE):
            deliveries += Delivery.objects.bulk_create(
                [
                    Delivery(event_id=event_id, endpoint=endpoint, next_attempt_at=now, manual=True)
                    for event_id in event_ids[start : start + REPLAY_BATCH_SIZE]
                ]
            )
        audit_record(
            actor=actor,
            action="webhook_endpoint.replayed",
            organization=endpoint.organization,
            target=endpoint,
            changes={"since": since.isoformat(), "events": len(event_ids)},
        )
        _nudge_on_commit(deliveries, limit=REPLAY_NUDGE_LIMIT)
    return len(event_ids)
