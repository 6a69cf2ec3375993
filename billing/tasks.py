"""Background work for metering."""

from celery import shared_task

from billing.partitions import ensure_ledger_partitions


@shared_task(queue="ingest")
def create_ledger_partitions() -> list[str]:
    """Keeps monthly ledger partitions created three months ahead (idempotent)."""
    return ensure_ledger_partitions()
