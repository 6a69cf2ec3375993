"""Writes for events and webhooks. `emit` is what the rest of Tollgate calls."""

from django.db import connection, transaction
from django.utils import timezone

from portal.models import Organization
from webhooks.catalog import event_type_get
from webhooks.models import Delivery, Event, WebhookEndpoint


def emit(
    *,
    organization: Organization | str,
    type: str,
    data: dict,
    environment: str = "live",
) -> Event:
    """Records an event and one delivery per enabled endpoint of the org that wants it, in
    the caller's transaction (the outbox): if the change that caused it rolls back, so
    does the event. Workers are nudged after commit; the sweeper catches any missed nudge."""
    event_type = event_type_get(type)
    if event_type is None:
        raise ValueError(f"Unknown event type '{type}': add it to webhooks/catalog.py.")
    organization_id = getattr(organization, "pk", organization)
    now = timezone.now()
    event = Event(
        organization_id=organization_id,
        type=type,
        version=event_type.version,
        environment=environment,
        created_at=now,
    )
    event.payload = {
        "id": event.id,
        "type": type,
        "version": event_type.version,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "organization": str(organization_id),
        "environment": environment,
        "data": data,
    }
    with transaction.atomic():
        event.save(force_insert=True)
        endpoints = [
            endpoint
            for endpoint in WebhookEndpoint.objects.filter(
                organization_id=organization_id,
                status=WebhookEndpoint.Status.ENABLED,
                environment=environment,
            )
            if endpoint.wants(type)
        ]
        endpoints = _held(endpoints)
        deliveries = Delivery.objects.bulk_create(
            [
                Delivery(event=event, endpoint=endpoint, next_attempt_at=now)
                for endpoint in endpoints
            ]
        )
    if deliveries:
        ids = [str(delivery.pk) for delivery in deliveries]
        transaction.on_commit(lambda: nudge(ids))
    return event


def nudge(delivery_ids: list[str]) -> None:
    """Queues the first attempt of new deliveries (webhooks.tasks). Runs after commit, so it
    must not fail the caller: if the broker is down, the deliveries are already safe in
    PostgreSQL and the sweeper queues them once their queue lease runs out."""
    import logging

    from webhooks.tasks import deliveries_enqueue

    try:
        deliveries_enqueue(delivery_ids)
    except Exception:
        logging.getLogger(__name__).warning(
            "could not queue %d webhook deliveries; the sweeper will",
            len(delivery_ids),
            exc_info=True,
        )


def _held(endpoints: list[WebhookEndpoint]) -> list[WebhookEndpoint]:
    """Locks the endpoints against deletion until the caller commits (FOR KEY SHARE, which
    blocks nothing else), and drops any deleted meanwhile: a delete racing an emit then
    never fails the change the event belongs to at commit."""
    if not endpoints or connection.vendor != "postgresql":
        return endpoints
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM webhooks_webhookendpoint WHERE id = ANY(%s) FOR KEY SHARE",
            [[endpoint.pk for endpoint in endpoints]],
        )
        alive = {row[0] for row in cursor.fetchall()}
    return [endpoint for endpoint in endpoints if endpoint.pk in alive]
