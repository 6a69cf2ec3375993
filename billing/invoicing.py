"""Period close and invoices: one invoice per subscription period, priced by the same quote
as the bill preview, finalized after a grace period, numbered without gaps.

The close runs from Celery beat (billing.tasks.run_billing) and from `manage.py
run_billing --as-of`. It is safe to run any number of times and in any number of workers:
each subscription is closed under its row lock, and the unique constraint on (subscription,
period_start) makes a second invoice for a period impossible rather than unlikely.

Usage is read from the ledger's rollups exactly as the preview reads it. A draft is
re-priced when it is finalized, so usage that arrives during the grace period is billed.
Usage of a finalized period that arrives later (within USAGE_LATE_ARRIVAL_DAYS) is billed on
the next invoice as an adjustment line: the charge re-priced on all usage now known, minus
what was billed for it. docs/billing.md has the whole story.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing import entitlements
from billing import subscriptions as subs
from billing.catalog import charge_spec
from billing.models import (
    Coupon,
    CreditGrant,
    CreditNote,
    DocumentSequence,
    Invoice,
    InvoiceLine,
    Subscription,
)
from billing.pricing.engine import price_charge
from billing.pricing.money import ZERO, format_money, round_money
from billing.profiles import profile_get
from billing.quotes import Quote, QuoteLine, TaxSpec, build_quote
from billing.selectors import UsageFilter, usage_aggregate
from common.errors import Conflict, InvalidInput
from portal.audit import Actor, audit_record

logger = logging.getLogger(__name__)
FINALIZED = (Invoice.Status.OPEN, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE)
SYSTEM = Actor.system("billing")


def _grace() -> timedelta:
    return timedelta(seconds=settings.INVOICE_GRACE_SECONDS)


@dataclass
class RunResult:
    closed: list[Invoice] = field(default_factory=list)
    finalized: list[Invoice] = field(default_factory=list)
    trials_ended: int = 0


# --- The run --------------------------------------------------------------------------------
def due_subscription_chunks(*, as_of: datetime, size: int = 500) -> Iterator[list]:
    """Ids of subscriptions with a period ended by `as_of`, in chunks (the unit of work the
    beat task hands to workers)."""
    due = (
        Subscription.objects.exclude(status=Subscription.Status.CANCELED)
        .filter(current_period_end__lte=as_of)
        .order_by("current_period_end", "pk")
        .values_list("pk", flat=True)
    )
    yield from _chunks(due.iterator(chunk_size=size), size)


def due_draft_chunks(*, as_of: datetime, size: int = 500) -> Iterator[list]:
    """Ids of drafts whose grace period ended by `as_of`, oldest period first."""
    drafts = (
        Invoice.objects.filter(status=Invoice.Status.DRAFT, finalize_after__lte=as_of)
        .order_by("period_start", "pk")
        .values_list("pk", flat=True)
    )
    yield from _chunks(drafts.iterator(chunk_size=size), size)


def _chunks(ids: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in ids:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def billing_run(*, as_of: datetime, now: datetime | None = None) -> RunResult:
    """Closes every period that ended before `as_of` and finalizes every draft whose grace
    period ended before it, in this process. `now` is when the ledger is read (the real
    clock by default). The beat task spreads the same work over workers instead."""
    result = RunResult()
    result.trials_ended = trials_end(as_of=as_of)
    from billing.period_close import close_chunk, finalize_chunk

    for chunk in list(due_subscription_chunks(as_of=as_of)):
        result.closed.extend(close_chunk(chunk, as_of=as_of, now=now))
    for chunk in list(due_draft_chunks(as_of=as_of)):
        result.finalized.extend(finalize_chunk(chunk, as_of=as_of, now=now))
    return result


def trials_end(*, as_of: datetime) -> int:
    """Trialing subscriptions whose trial is over become active."""
    ended = Subscription.objects.filter(
        status=Subscription.Status.TRIALING, trial_ends_at__lte=as_of
    )
    organizations = list(ended.values_list("organization_id", flat=True))
    count = ended.update(status=Subscription.Status.ACTIVE)
    for organization_id in organizations:
        entitlements.invalidate(organization_id)
    return count


def period_close(*, subscription_id, as_of: datetime, now: datetime | None = None) -> list:
    """Closes each period of the subscription that ended by `as_of`, oldest first: a draft
    invoice per period, and the subscription moves on to its next period (or ends)."""
    from billing.period_close import close_chunk

    return close_chunk([subscription_id], as_of=as_of, now=now)


# --- Pricing an invoice ----------------------------------------------------------------------
@dataclass
class PricingContext:
    """What pricing an invoice reads besides usage. The period close fills it for a whole
    chunk of subscriptions with a few queries (billing/period_close.py), a chunk of one
    included."""

    phases: list | None
    addons: list
    coupon: Coupon | None
    credits: Decimal
    tax: TaxSpec | None
    earlier_lines: list  # finalized usage lines that late usage may adjust
    anomalies: dict[str, str]
    usage_reader: Callable | None = None  # (org id, meter, start, end) -> Decimal
    breakdown_reader: Callable | None = None  # (org id, meter, start, end) -> [(endpoint, q)]
    # Pay in advance: the base fee already billed for this period, the version in force
    # when the next one starts (None: no next period), and the billing time zone.
    advance_paid: Decimal = ZERO
    next_version: object = None
    zone: str = "UTC"


def advance_paid(invoices: list[Invoice]) -> dict:
    """For each period invoice, the base fee billed in advance for its period (by the
    previous period's invoice, or the opening invoice), from finalized invoices."""
    periods = [invoice for invoice in invoices if invoice.kind == Invoice.Kind.PERIOD]
    if not periods:
        return {}
    lines = InvoiceLine.objects.filter(
        Q(kind=InvoiceLine.Kind.BASE_FEE_ADVANCE)
        | Q(kind=InvoiceLine.Kind.BASE_FEE, invoice__kind=Invoice.Kind.OPENING),
        invoice__subscription_id__in={invoice.subscription_id for invoice in periods},
        invoice__status__in=FINALIZED,
        period_start__gte=min(invoice.period_start for invoice in periods),
        period_start__lt=max(invoice.period_end for invoice in periods),
    ).values_list("invoice__subscription_id", "period_start", "amount")
    paid = {}
    for invoice in periods:
        paid[invoice.pk] = sum(
            (
                amount
                for subscription_id, start, amount in lines
                if subscription_id == invoice.subscription_id
                and invoice.period_start <= start < invoice.period_end
            ),
            ZERO,
        )
    return paid


def earlier_usage_lines(invoices: list[Invoice]):
    """Finalized usage lines of the same subscriptions that periods within the late-arrival
    window before these invoices billed, with the adjustments made to them since."""
    window = timedelta(days=settings.USAGE_LATE_ARRIVAL_DAYS)
    if not invoices:
        return InvoiceLine.objects.none()
    earliest = min(invoice.period_start for invoice in invoices)
    return (
        InvoiceLine.objects.filter(
            invoice__subscription_id__in={invoice.subscription_id for invoice in invoices},
            invoice__status__in=FINALIZED,
            period_end__gt=earliest - window,
            kind=InvoiceLine.Kind.USAGE,
            charge__isnull=False,
        )
        .select_related("charge__meter", "invoice")
        .prefetch_related("adjustments__invoice")
        .order_by("period_start", "position")
    )


def invoice_quote(invoice: Invoice, now: datetime, context: PricingContext) -> Quote:
    """The invoice's figures: the period's quote (usage up to its end, the version(s) in
    force, add-ons, the coupon that applied, tax) plus late-usage adjustments."""
    segments = subs._segments(
        invoice.subscription,
        invoice.period_start,
        invoice.period_end,
        as_of=invoice.period_end,
        phases=context.phases,
        usage_reader=context.usage_reader,
    )
    if not segments:
        return Quote(currency=invoice.currency, plan=invoice.plan, version=invoice.plan_version)
    if invoice.kind == Invoice.Kind.OPENING:
        for segment in segments:
            segment.fee_only = True
        return build_quote(
            segments=segments,
            coupon=context.coupon,
            credits_available=context.credits,
            tax=context.tax,
        )
    return build_quote(
        segments=segments,
        addons=context.addons,
        coupon=context.coupon,
        credits_available=context.credits,
        extra_lines=_advance_lines(invoice, context) + _late_adjustments(invoice, now, context),
        tax=context.tax,
    )


def _advance_lines(invoice: Invoice, context: PricingContext) -> list[QuoteLine]:
    """Pay in advance: this period's fee, billed before, comes off; the next period's fee
    is billed now (unless the subscription ends with this period)."""
    lines = []
    if context.advance_paid:
        lines.append(
            QuoteLine(
                kind="advance_applied",
                description="Base fee for this period, billed in advance",
                amount=-context.advance_paid,
            )
        )
    version = context.next_version
    subscription = invoice.subscription
    ends_here = (
        subscription.status == Subscription.Status.CANCELED
        and subscription.canceled_at is not None
        and subscription.canceled_at <= invoice.period_end
    ) or (
        subscription.cancel_at_period_end and subscription.current_period_end <= invoice.period_end
    )
    if version is None or ends_here or not version.plan.pay_in_advance or not version.base_fee:
        return lines
    start = invoice.period_end
    end = subs.next_period_end(subscription, start, version.plan, context.zone)
    lines.append(
        QuoteLine(
            kind="base_fee_advance",
            description=f"{version.plan.name} base fee, in advance ({start:%Y-%m-%d} to "
            f"{end:%Y-%m-%d})",
            amount=round_money(version.base_fee, invoice.currency),
            starts_at=start,
            ends_at=end,
        )
    )
    return lines


def opening_invoice(*, subscription_id, now: datetime | None = None) -> Invoice | None:
    """A pay-in-advance subscription's first base fee, invoiced (and finalized) when it
    starts. Safe to call twice: the unique constraint keeps one per subscription."""
    from billing.period_close import finalize_chunk

    now = now or timezone.now()
    subscription = Subscription.objects.select_related("organization").get(pk=subscription_id)
    phase = subs.phase_at(subscription, subscription.current_period_start) or subs.phase_at(
        subscription, subscription.started_at
    )
    if phase is None or not phase.plan_version.plan.pay_in_advance:
        return None
    version = phase.plan_version
    try:
        with transaction.atomic():
            invoice = Invoice.objects.create(
                organization=subscription.organization,
                subscription=subscription,
                kind=Invoice.Kind.OPENING,
                currency=version.plan.currency,
                period_start=subscription.current_period_start,
                period_end=subscription.current_period_end,
                plan=version.plan.code,
                plan_version=version.number,
                usage_measured_at=now,
                finalize_after=now,
                collection=profile_get(subscription.organization).collection,
            )
    except IntegrityError:
        return None
    finalized = finalize_chunk([invoice.pk], as_of=now, now=now)
    return finalized[0] if finalized else None


def compose(invoice: Invoice, now: datetime, context: PricingContext) -> list[InvoiceLine]:
    """Prices the invoice: sets its totals (unsaved) and returns its lines (unsaved)."""
    quote = invoice_quote(invoice, now, context)
    lines = []
    for position, line in enumerate(quote.lines):
        row = InvoiceLine(
            invoice=invoice,
            position=position,
            kind=line.kind,
            description=line.description[:300],
            meter=line.meter or "",
            charge=line.source,
            quantity=line.quantity,
            amount=line.amount,
            period_start=line.starts_at,
            period_end=line.ends_at,
            adjusts=line.extra.get("adjusts"),
            received_after=line.extra.get("received_after"),
            received_until=line.extra.get("received_until"),
            addon=line.extra.get("addon"),
        )
        if line.kind == "usage":
            row.received_until = now
            row.tiers = _tiers_json(line)
            row.breakdown = _endpoint_breakdown(invoice, line, context)
            row.explanation = context.anomalies.get(line.meter, "")
        lines.append(row)
    invoice.subtotal, invoice.discount = quote.subtotal, quote.discount
    invoice.credits, invoice.tax, invoice.total = quote.credits, quote.tax, quote.total
    invoice.tax_rate = (
        {
            "name": quote.tax_spec.name,
            "percent": str(quote.tax_spec.percent),
            "inclusive": quote.tax_spec.inclusive,
        }
        if quote.tax_spec
        else None
    )
    invoice.usage_measured_at = now
    return lines


PRICED_FIELDS = ["subtotal", "discount", "credits", "tax", "total", "tax_rate", "usage_measured_at"]


def _tiers_json(line: QuoteLine) -> list[dict]:
    from billing.quotes import quote_as_json

    return quote_as_json(Quote(currency="USD", plan="", version=0, lines=[line]))["lines"][0][
        "tiers"
    ]


def _endpoint_breakdown(invoice: Invoice, line: QuoteLine, context: PricingContext) -> list:
    """Per-endpoint quantities of an additive usage line whose events name endpoints (gate
    traffic); the amount stays the line's, since tiers price the total."""
    meter = line.source.meter if line.source else None
    if meter is None or meter.aggregation not in subs.ADDITIVE or not line.quantity:
        return []
    if context.breakdown_reader is not None:
        parts = context.breakdown_reader(
            invoice.organization_id, meter, line.starts_at, line.ends_at
        )
    else:
        rows = usage_aggregate(
            UsageFilter(
                organization_id=invoice.organization_id,
                meter=meter,
                start=line.starts_at,
                end=line.ends_at,
                group_by=("endpoint",),
            )
        )
        parts = [(row["endpoint"], row["quantity"]) for row in rows]
    if not any(endpoint and quantity for endpoint, quantity in parts):
        return []
    return [
        {"endpoint": endpoint or "(none)", "quantity": str(quantity)}
        for endpoint, quantity in sorted(parts, key=lambda part: -(part[1] or 0))
        if quantity
    ]


def _late_adjustments(invoice: Invoice, now: datetime, context: PricingContext) -> list:
    """Usage of earlier, finalized periods (within the late-arrival window) that arrived
    after they were billed: each charge re-priced on everything now known, minus what its
    line and earlier adjustments billed."""
    window = timedelta(days=settings.USAGE_LATE_ARRIVAL_DAYS)
    adjustments = []
    for line in context.earlier_lines:
        if (
            line.invoice.subscription_id != invoice.subscription_id
            or line.invoice.period_start >= invoice.period_start
            or line.period_end <= invoice.period_start - window
            or line.period_start >= line.period_end  # nothing was billable (a trial)
        ):
            continue
        billed = line.quantity or ZERO
        received_after = line.received_until
        for earlier in line.adjustments.all():
            # Adjustments already made count, drafts included (a draft of the period before
            # this one may be finalized at the same moment by another worker); this
            # invoice's own are the ones being re-priced.
            if earlier.invoice_id == invoice.pk or earlier.invoice.status == Invoice.Status.VOID:
                continue
            billed += earlier.quantity or ZERO
            if earlier.received_until and (
                received_after is None or earlier.received_until > received_after
            ):
                received_after = earlier.received_until
        meter = line.charge.meter
        if context.usage_reader is not None:
            known = context.usage_reader(
                invoice.organization_id, meter, line.period_start, line.period_end
            )
        else:
            known = subs._usage(invoice.organization_id, meter, line.period_start, line.period_end)
        if known == billed:
            continue
        spec = charge_spec(line.charge)
        amount = (
            price_charge(spec, known, invoice.currency).amount
            - price_charge(spec, billed, invoice.currency).amount
        )
        adjustments.append(
            QuoteLine(
                kind="adjustment",
                description=(
                    f"Late usage: {meter.name}, {line.period_start:%Y-%m-%d} to "
                    f"{line.period_end:%Y-%m-%d} (invoice {line.invoice.number})"
                ),
                amount=amount,
                meter=meter.code,
                quantity=known - billed,
                starts_at=line.period_start,
                ends_at=line.period_end,
                extra={
                    "adjusts": line,
                    "received_after": received_after,
                    "received_until": now,
                },
            )
        )
    return adjustments


# --- Finalization, numbering, state changes ----------------------------------------------------
def reserve_numbers(kind: str, moment: datetime, count: int) -> list[str]:
    """The next `count` numbers of the series (INV-2026-000123): the row lock serializes
    concurrent finalizations, and a rolled-back finalization gives its numbers back, so the
    series has no gaps."""
    prefix = f"{kind}-{moment.year}"
    DocumentSequence.objects.get_or_create(prefix=prefix)
    sequence = DocumentSequence.objects.select_for_update().get(prefix=prefix)
    first = sequence.last_number + 1
    sequence.last_number += count
    sequence.save(update_fields=["last_number"])
    return [f"{prefix}-{number:06d}" for number in range(first, first + count)]


def _next_number(kind: str, moment: datetime) -> str:
    return reserve_numbers(kind, moment, 1)[0]


def _customer_snapshot(invoice: Invoice, profile) -> dict:
    organization = invoice.organization
    return {
        "name": profile.legal_name or organization.name,
        "slug": organization.slug,
        "email": profile.billing_email,
        "address": [
            part
            for part in (
                profile.address_line1,
                profile.address_line2,
                " ".join(p for p in (profile.postal_code, profile.city) if p),
                profile.region,
                profile.country,
            )
            if part
        ],
        "country": profile.country,
        "tax_id": profile.tax_id,
    }


FINALIZED_FIELDS = [
    *PRICED_FIELDS,
    "number",
    "customer",
    "status",
    "issued_at",
    "due_at",
    "paid_at",
]


def mark_finalized(invoice: Invoice, number: str, issued_at: datetime, profile) -> None:
    """The state change of finalization, on a priced invoice (saved by the caller)."""
    invoice.number = number
    invoice.customer = _customer_snapshot(invoice, profile)
    invoice.status = Invoice.Status.OPEN
    invoice.issued_at = issued_at
    invoice.due_at = issued_at + timedelta(days=settings.INVOICE_PAYMENT_TERMS_DAYS)
    if invoice.total <= 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = issued_at
        if invoice.total < 0:
            # Corrections larger than the period's charges: the customer keeps the
            # difference as credit for the next invoice.
            CreditGrant.objects.create(
                organization_id=invoice.organization_id,
                currency=invoice.currency,
                amount=-invoice.total,
                remaining=-invoice.total,
                granted_at=issued_at,
                reason=f"Credit balance of invoice {invoice.number}",
            )
    audit_record(
        actor=SYSTEM,
        action="invoice.finalized",
        organization=invoice.organization,
        target=invoice,
        changes={
            "number": invoice.number,
            "total": format_money(invoice.total, invoice.currency),
            "status": invoice.status,
        },
    )
    # The events (outbox rows) commit or roll back with the chunk's finalization; one
    # insert per event, plus one per subscribed endpoint.
    from billing import webhook_events
    from webhooks.services import emit

    emit(
        organization=invoice.organization_id,
        type="invoice.finalized",
        data=webhook_events.invoice_finalized_data(invoice),
    )
    if invoice.status == Invoice.Status.PAID:
        emit(
            organization=invoice.organization_id,
            type="invoice.paid",
            data=webhook_events.invoice_paid_data(invoice),
        )
    if invoice.status == Invoice.Status.OPEN:
        from billing import payments

        invoice_id = invoice.pk
        transaction.on_commit(lambda: payments.on_invoice_finalized(invoice_id))


def invoice_finalize(
    *, invoice_id, now: datetime | None = None, as_of: datetime | None = None
) -> Invoice | None:
    """Draft -> open (billing/period_close.finalize_chunk for one invoice). Returns None
    when it was not a draft (already finalized by another run)."""
    from billing.period_close import finalize_chunk

    finalized = finalize_chunk([invoice_id], as_of=as_of, now=now)
    return finalized[0] if finalized else None


def _after_settlement(invoice: Invoice) -> None:
    """An invoice no longer owed may end the org's past-due state (and the gate's denial)."""
    from billing import payments

    organization = invoice.organization
    transaction.on_commit(lambda: payments.past_due_refresh(organization=organization))


def invoice_void(*, actor: Actor, invoice: Invoice) -> Invoice:
    """Open (or uncollectible) -> void. Credit the invoice drew is given back."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE):
            raise Conflict(
                f"A {invoice.status} invoice cannot be voided.", code="invoice_not_voidable"
            )
        if invoice.amount_paid > 0:
            raise Conflict(
                "Part of this invoice is paid: issue a credit note instead.",
                code="invoice_partly_paid",
            )
        invoice.status = Invoice.Status.VOID
        invoice.voided_at = timezone.now()
        invoice.next_payment_attempt_at = None
        invoice.save(update_fields=["status", "voided_at", "next_payment_attempt_at"])
        if invoice.credits > 0:
            CreditGrant.objects.create(
                organization_id=invoice.organization_id,
                currency=invoice.currency,
                amount=invoice.credits,
                remaining=invoice.credits,
                reason=f"Credit returned by voided invoice {invoice.number}",
            )
        audit_record(
            actor=actor,
            action="invoice.voided",
            organization=invoice.organization,
            target=invoice,
            changes={"number": invoice.number},
        )
        _after_settlement(invoice)
    return invoice


def invoice_mark_uncollectible(*, actor: Actor, invoice: Invoice) -> Invoice:
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != Invoice.Status.OPEN:
            raise Conflict(
                f"Only open invoices can be marked uncollectible (this one is {invoice.status}).",
                code="invoice_not_open",
            )
        invoice.status = Invoice.Status.UNCOLLECTIBLE
        invoice.marked_uncollectible_at = timezone.now()
        invoice.next_payment_attempt_at = None
        invoice.save(update_fields=["status", "marked_uncollectible_at", "next_payment_attempt_at"])
        audit_record(
            actor=actor,
            action="invoice.marked_uncollectible",
            organization=invoice.organization,
            target=invoice,
            changes={"number": invoice.number},
        )
        _after_settlement(invoice)
    return invoice


def _refund_or_credit(actor: Actor, note: CreditNote, amount: Decimal) -> None:
    """Refunds through Stripe; if Stripe refuses or cannot be reached, the customer gets
    the amount as credit instead, so a credit note is never lost."""
    from billing import payments

    try:
        payments.credit_note_refund(actor=actor, credit_note=note, amount=amount)
    except Exception:
        logger.exception("Refund of credit note %s failed; crediting the balance", note.number)
        with transaction.atomic():
            grant = CreditGrant.objects.create(
                organization_id=note.invoice.organization_id,
                currency=note.invoice.currency,
                amount=amount,
                remaining=amount,
                reason=f"Credit note {note.number}: the refund failed",
            )
            CreditNote.objects.filter(pk=note.pk).update(credit_grant=grant)
            audit_record(
                actor=actor,
                action="credit_note.refund_failed",
                organization=note.invoice.organization,
                target=note,
                changes={"credited": format_money(amount, note.invoice.currency)},
            )


def credit_note_create(
    *,
    actor: Actor,
    invoice: Invoice,
    amount: Decimal,
    reason: str,
    refund: bool = False,
    stripe_refund_id: str = "",
) -> CreditNote:
    """Takes `amount` off a finalized invoice. On what is still due it lowers the amount due
    (fully credited: the invoice is settled); beyond that (it was paid) the customer gets it
    back as credit for the next invoices, or, with `refund`, as a refund of the Stripe
    payment (billing.payments.credit_note_refund). With `stripe_refund_id` the money already
    went back through that Stripe refund: the note records it, and credits nothing."""
    if stripe_refund_id and refund:
        raise InvalidInput("A note for a refund made in Stripe refunds nothing more.")
    if not isinstance(refund, bool):
        raise InvalidInput("refund is true or false.", field="refund")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("Say why the credit note is issued.", field="reason")
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise InvalidInput("amount is a positive amount.", field="amount", code="invalid_amount")
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.PAID):
            raise Conflict(
                f"Credit notes are for open or paid invoices (this one is {invoice.status}).",
                code="invoice_not_creditable",
            )
        amount = round_money(amount, invoice.currency)
        if amount <= 0:
            raise InvalidInput(
                "amount rounds to zero in this currency.", field="amount", code="invalid_amount"
            )
        creditable = invoice.total - invoice.amount_credited
        if amount > creditable:
            raise InvalidInput(
                f"At most {format_money(creditable, invoice.currency)} can still be credited.",
                field="amount",
                code="credit_exceeds_invoice",
            )
        against_due = min(amount, invoice.amount_due)
        to_balance = amount - against_due
        refundable = ZERO
        if refund:
            paid_by_stripe = sum(
                invoice.attempts.filter(outcome="succeeded")
                .exclude(stripe_payment_intent_id="")
                .values_list("amount", flat=True),
                ZERO,
            )
            if not paid_by_stripe:
                raise InvalidInput(
                    "This invoice was not paid through Stripe, so there is nothing to refund: "
                    "issue the credit note without `refund` to credit the customer's balance.",
                    field="refund",
                    code="refund_unavailable",
                )
            refundable = min(to_balance, paid_by_stripe)
        if stripe_refund_id:
            refundable = to_balance  # given back already, by that refund
        grant = None
        if to_balance - refundable > 0:  # what is not refunded becomes credit
            grant = CreditGrant.objects.create(
                organization_id=invoice.organization_id,
                currency=invoice.currency,
                amount=to_balance - refundable,
                remaining=to_balance - refundable,
                reason=f"Credit note on invoice {invoice.number}",
            )
        note = CreditNote.objects.create(
            invoice=invoice,
            number=_next_number("CN", timezone.now()),
            amount=amount,
            reason=reason.strip()[:300],
            credit_grant=grant,
            refunded=bool(stripe_refund_id),
            stripe_refund_id=stripe_refund_id,
        )
        invoice.amount_credited += amount
        fields = ["amount_credited"]
        if invoice.status == Invoice.Status.OPEN and invoice.amount_due <= 0:
            invoice.status = Invoice.Status.PAID
            invoice.paid_at = timezone.now()
            invoice.next_payment_attempt_at = None
            fields += ["status", "paid_at", "next_payment_attempt_at"]
            from billing.webhook_events import invoice_paid_data
            from webhooks.services import emit

            emit(
                organization=invoice.organization,
                type="invoice.paid",
                data=invoice_paid_data(invoice),
            )
        invoice.save(update_fields=fields)
        if invoice.status == Invoice.Status.PAID:
            _after_settlement(invoice)
        if refundable > 0 and not stripe_refund_id:
            transaction.on_commit(lambda: _refund_or_credit(actor, note, refundable))
        audit_record(
            actor=actor,
            action="invoice.credit_note_issued",
            organization=invoice.organization,
            target=invoice,
            changes={
                "credit_note": note.number,
                "amount": format_money(amount, invoice.currency),
                "reason": note.reason,
            },
        )
    return note
