"""Background work for the gate."""

import logging

from celery import shared_task

from billing.ingest import usage_ingest
from common.redis import get_redis
from keys.gate_usage import drain

logger = logging.getLogger(__name__)


def _ingest_gate_events(events: list[dict]) -> None:
    result = usage_ingest(events=events, source="gate")
    for rejection in result.rejected:
        # e.g. an endpoint mapped to a meter that was since renamed: say so, loudly.
        logger.warning(
            "gate usage event refused: %s %s (%s)",
            events[rejection.index]["id"],
            rejection.code,
            rejection.detail,
        )


@shared_task(queue="ingest", acks_late=True)
def drain_gate_usage() -> int:
    """Idempotent: events carry the gate's request ids, which the ledger deduplicates."""
    return drain(get_redis(), _ingest_gate_events)
