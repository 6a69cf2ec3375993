"""The ingestion hot path: validate a batch of usage events, dedupe, append, roll up.

One batch is one transaction: the dedupe records, the ledger rows, the hourly rollups and
the unique values commit together, so a usage query right after the 202 sees the events,
and a crash leaves nothing half-counted. validation.py checks events (one query per kind
of reference, not per event); storage.py writes them.
"""

from dataclasses import dataclass, field

from django.utils import timezone

from billing.ingest.storage import store_batch
from billing.ingest.validation import MAX_BATCH, BatchLookups, EventRow, Rejected, validate_event
from billing.models import UsageEvent

__all__ = ["MAX_BATCH", "IngestResult", "Rejection", "usage_ingest"]


@dataclass
class Rejection:
    index: int
    code: str
    detail: str


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def usage_ingest(*, events: list, source: str = UsageEvent.Source.API) -> IngestResult:
    """Validates, dedupes and records a batch; valid events are stored even if others fail."""
    now = timezone.now()
    result = IngestResult()
    lookups = BatchLookups(events)
    rows: list[EventRow] = []
    seen: set[tuple] = set()
    for index, event in enumerate(events):
        try:
            row = validate_event(event, lookups, now)
        except Rejected as rejection:
            result.rejected.append(Rejection(index, rejection.code, rejection.detail))
            continue
        identity = (row.organization_id, row.event_id)
        if identity in seen:
            result.duplicates += 1  # repeated inside this batch: counted once
            continue
        seen.add(identity)
        rows.append(row)
    if rows:
        stored = store_batch(rows, received_at=now, source=source)
        result.accepted = stored
        result.duplicates += len(rows) - stored
    return result
