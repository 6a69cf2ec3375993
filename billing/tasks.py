"""Background work for metering."""

from celery import shared_task

from billing.partitions import ensure_ledger_partitions


@shared_task(queue="ingest")
def create_ledger_partitions() -> list[str]:
    """Keeps monthly ledger partitions created three months ahead (idempotent)."""
    return ensure_ledger_partitions()


@shared_task(queue="billing")
def enforce_spend_caps() -> int:
    """Re-checks every capped subscription (beat, every minute); returns how many are over."""
    from billing.models import Subscription
    from billing.subscriptions import spend_cap_check

    capped = Subscription.objects.exclude(status=Subscription.Status.CANCELED).filter(
        spend_cap__isnull=False
    )
    return sum(1 for subscription in capped if spend_cap_check(subscription=subscription))
