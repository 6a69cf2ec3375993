"""Concurrent batches with the same ids, from several processes, count each event once."""

import multiprocessing

import pytest
from django.db import connections

from billing.models import UsageEvent, UsageEventId, UsageRollup
from tests.factories import OrganizationFactory

PROCESSES = 6


def _ingest_in_child(args) -> tuple[int, int]:
    slug, offset, portable = args
    import billing.ingest.storage
    from billing.ingest import usage_ingest

    billing.ingest.storage.PORTABLE_SQL_ONLY = portable

    # Overlapping batches in different orders: each process sends ids from `offset` on,
    # wrapping around, so every id is offered by every process.
    ids = [(offset * 37 + i) % 300 for i in range(300)]
    events = [
        {"id": f"c{i}", "meter": "records_processed", "customer": slug, "quantity": "2"}
        for i in ids
    ]
    accepted = duplicates = 0
    for start in range(0, len(events), 100):
        result = usage_ingest(events=events[start : start + 100])
        accepted += result.accepted
        duplicates += result.duplicates
    connections.close_all()
    return accepted, duplicates


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_the_same_ids_count_once(meters, store_path):
    org = OrganizationFactory()
    connections.close_all()  # forked children must not share the parent's connection
    with multiprocessing.get_context("fork").Pool(PROCESSES) as pool:
        results = pool.map(
            _ingest_in_child,
            [(org.slug, n, store_path == "portable") for n in range(PROCESSES)],
        )
    assert sum(accepted for accepted, _ in results) == 300
    assert sum(duplicates for _, duplicates in results) == 300 * (PROCESSES - 1)
    assert UsageEvent.objects.filter(organization=org).count() == 300
    assert UsageEventId.objects.filter(organization=org).count() == 300
    rollups = UsageRollup.objects.filter(organization=org)
    assert sum(rollup.quantity_sum for rollup in rollups) == 600
    assert sum(rollup.event_count for rollup in rollups) == 300
