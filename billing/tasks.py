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


@shared_task(queue="billing", acks_late=True)
def check_alerts() -> int:
    """Fires usage and spend thresholds crossed this period (beat, every minute; once per
    threshold and period however often it runs). Returns how many fired."""
    import logging

    from billing.alerts import alerts_check, organizations_with_thresholds

    fired = 0
    for organization in organizations_with_thresholds():
        try:
            fired += len(alerts_check(organization=organization).fired)
        except Exception:
            # One org's failure (say, a plan without versions) must not starve the others;
            # the next run retries it.
            logging.getLogger(__name__).exception("alerts check failed for %s", organization.pk)
    return fired


@shared_task(queue="billing", acks_late=True)
def consume_quota_crossings() -> int:
    """Turns the gate's soft-quota crossings (a Redis stream) into alerts (beat, every few
    seconds); entries are acknowledged after their firing commits."""
    from billing.alerts import quota_crossings_consume
    from common.redis import get_redis

    return quota_crossings_consume(get_redis())


@shared_task(queue="billing", acks_late=True)
def detect_anomalies(day: str | None = None) -> int:
    """Flags yesterday's (UTC) usage far outside each org's own pattern (beat, daily);
    `day` (ISO date) re-runs another day. Idempotent per day."""
    from datetime import date, timedelta

    from django.utils import timezone

    from billing.anomalies import anomalies_detect

    target = date.fromisoformat(day) if day else timezone.now().date() - timedelta(days=1)
    return len(anomalies_detect(day=target))


@shared_task(queue="billing")
def run_billing() -> dict:
    """Period close and finalization up to now (beat, every minute; idempotent): ends trials,
    then hands the due subscriptions and drafts to workers in chunks. A chunk that two
    workers run (a redelivery, an overlapping beat) closes each period once all the same."""
    from django.utils import timezone

    from billing.invoicing import due_draft_chunks, due_subscription_chunks, trials_end

    as_of = timezone.now()
    trials_end(as_of=as_of)
    chunks = {"close": 0, "finalize": 0}
    for chunk in due_subscription_chunks(as_of=as_of):
        close_periods.delay([str(pk) for pk in chunk], as_of.isoformat())
        chunks["close"] += 1
    for chunk in due_draft_chunks(as_of=as_of):
        finalize_invoices.delay([str(pk) for pk in chunk], as_of.isoformat())
        chunks["finalize"] += 1
    return chunks


@shared_task(queue="billing", acks_late=True)
def close_periods(subscription_ids: list[str], as_of: str) -> int:
    from datetime import datetime

    from billing.period_close import close_chunk

    return len(close_chunk(subscription_ids, as_of=datetime.fromisoformat(as_of)))


@shared_task(queue="billing", acks_late=True)
def finalize_invoices(invoice_ids: list[str], as_of: str) -> int:
    from datetime import datetime

    from billing.period_close import finalize_chunk

    return len(finalize_chunk(invoice_ids, as_of=datetime.fromisoformat(as_of)))


@shared_task(queue="billing")
def run_dunning() -> int:
    """Retries the invoice payments that are due (beat, every minute); returns how many."""
    from billing.payments import dunning_run

    return dunning_run()


@shared_task(queue="billing")
def charge_invoice(invoice_id: str) -> str | None:
    """One charge of an invoice (e.g. after a card is saved); safe to run twice: a charge in
    flight or a paid invoice is left alone."""
    from billing.models import Invoice
    from billing.payments import invoice_charge

    attempt = invoice_charge(invoice=Invoice.objects.get(pk=invoice_id))
    return attempt.outcome if attempt is not None else None
