"""Background work for the gate."""

import logging
from datetime import datetime, timedelta

from celery import shared_task

from billing.ingest import usage_ingest
from common.redis import get_redis
from keys.gate_usage import drain
from keys.models import ApiKey
from keys.services import key_mark_used
from keys.signals import gate_calls_ingested

logger = logging.getLogger(__name__)


def _ingest_gate_events(events: list[dict]) -> None:
    result = usage_ingest(events=events, source="gate")
    _mark_keys_used(events)
    refused = {rejection.index for rejection in result.rejected}
    written = [event for index, event in enumerate(events) if index not in refused]
    if written:
        gate_calls_ingested.send(sender=_ingest_gate_events, events=written)
    for rejection in result.rejected:
        # e.g. an endpoint mapped to a meter that was since renamed: say so, loudly.
        logger.warning(
            "gate usage event refused: %s %s (%s)",
            events[rejection.index]["id"],
            rejection.code,
            rejection.detail,
        )


def _mark_keys_used(events: list[dict]) -> None:
    """Last use of each key, from the calls the gate let through (off the hot path)."""
    latest: dict[str, datetime] = {}
    for event in events:
        at = datetime.fromisoformat(event["timestamp"])
        if event.get("key_id") and at > latest.get(event["key_id"], at - timedelta(1)):
            latest[event["key_id"]] = at
    for key in ApiKey.objects.filter(pk__in=latest):
        key_mark_used(key=key, now=latest[str(key.pk)])


@shared_task(queue="ingest", acks_late=True)
def drain_gate_usage() -> int:
    """Idempotent: events carry the gate's request ids, which the ledger deduplicates."""
    return drain(get_redis(), _ingest_gate_events)
