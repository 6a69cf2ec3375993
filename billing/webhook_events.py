"""The `data` of billing's webhook events (webhooks/catalog.py has their schemas): plain
dicts built from rows the caller already holds, so an emit costs no extra query."""

from billing.models import Invoice, Subscription
from billing.pricing.money import format_exact, format_money
from webhooks.catalog import timestamp


def subscription_data(subscription: Subscription, plan_version, **extra) -> dict:
    """`plan_version` is the version in force (the caller knows it: no phase lookup)."""
    return {
        "id": str(subscription.id),
        "status": subscription.status,
        "plan": plan_version.plan.code,
        "plan_version": plan_version.number,
        "currency": plan_version.plan.currency,
        "started_at": timestamp(subscription.started_at),
        "current_period_start": timestamp(subscription.current_period_start),
        "current_period_end": timestamp(subscription.current_period_end),
        "trial_ends_at": timestamp(subscription.trial_ends_at),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        **extra,
    }


def plan_reference(plan_version) -> dict:
    return {"plan": plan_version.plan.code, "plan_version": plan_version.number}


def invoice_data(invoice: Invoice, **extra) -> dict:
    currency = invoice.currency
    return {
        "id": str(invoice.id),
        "number": invoice.number,
        "currency": currency,
        "total": format_money(invoice.total, currency),
        "amount_due": format_money(invoice.amount_due, currency),
        "period_start": timestamp(invoice.period_start),
        "period_end": timestamp(invoice.period_end),
        "subscription": str(invoice.subscription_id),
        **extra,
    }


def invoice_finalized_data(invoice: Invoice) -> dict:
    currency = invoice.currency
    return invoice_data(
        invoice,
        kind=invoice.kind,
        status=invoice.status,
        plan=invoice.plan,
        plan_version=invoice.plan_version,
        subtotal=format_money(invoice.subtotal, currency),
        discount=format_money(invoice.discount, currency),
        credits=format_money(invoice.credits, currency),
        tax=format_money(invoice.tax, currency),
        issued_at=timestamp(invoice.issued_at),
        due_at=timestamp(invoice.due_at),
    )


def invoice_paid_data(invoice: Invoice) -> dict:
    return invoice_data(
        invoice,
        amount_paid=format_money(invoice.amount_paid, invoice.currency),
        paid_at=timestamp(invoice.paid_at),
    )


def firing_data(firing, *, kind: str, currency: str | None = None) -> dict:
    """An AlertFiring as `usage.threshold_reached` describes it."""
    return {
        "alert": str(firing.id),
        "source": firing.source,
        "kind": kind,
        "threshold": str(firing.threshold_id) if firing.threshold_id else None,
        "meter": firing.meter or None,
        "value": format_exact(firing.value),
        "limit": format_exact(firing.limit),
        "currency": currency,
        "period_start": timestamp(firing.period_start),
        "fired_at": timestamp(firing.fired_at),
    }


def anomaly_data(anomaly) -> dict:
    return {
        "anomaly": str(anomaly.id),
        "meter": anomaly.meter.code,
        "day": anomaly.day.isoformat(),
        "observed": format_exact(anomaly.observed),
        "median": format_exact(anomaly.median),
        "score": format(anomaly.score, "f"),
        "explanation": anomaly.explanation,
        "detected_at": timestamp(anomaly.detected_at),
    }
