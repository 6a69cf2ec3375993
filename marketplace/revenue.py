"""Revenue share (MKT-4): agreements, and partners' shares of paid invoices.

An agreement gives a partner `percent` of one app's revenue from `starts_on` until `ends_on`
(exclusive): of the app's own price (`app_price`: the invoice lines of its add-on) or of
the usage its keys made (`app_usage`: the app's part of each usage line of the installing
org's invoice). `revenue_accrue` turns paid invoices into earnings and credit notes into
reversals, once each (the unique constraints of RevenueShareEntry decide, so it is safe to
run twice and in several workers). docs/marketplace.md, "Revenue share", has the rules and
a worked example.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import CreditNote, Invoice, InvoiceLine, Meter
from billing.pricing.money import ZERO, exact_context, format_exact, round_money
from billing.selectors import UsageFilter, usage_aggregate
from common.errors import Conflict, InvalidInput
from keys.models import ApiKey
from marketplace.models import App, Install, RevenueShareAgreement, RevenueShareEntry
from portal.audit import Actor, audit_record

Basis = RevenueShareAgreement.Basis
Kind = RevenueShareEntry.Kind
HUNDRED = Decimal(100)
# Bases keep the digits of the money field (12 decimals); the share is rounded once, to
# the currency's minor unit, half up, like every invoice line.
BASE_QUANTUM = Decimal(1).scaleb(-12)
ADDITIVE = (Meter.Aggregation.COUNT, Meter.Aggregation.SUM)
USAGE_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.ADJUSTMENT)


# --- Agreements ---------------------------------------------------------------------------
def _clean_percent(value) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise InvalidInput(
            "percent is a number such as 70.", field="percent", code="invalid_percent"
        )
    try:
        percent = Decimal(str(value).strip())
    except InvalidOperation:
        percent = None
    if (
        percent is None
        or not percent.is_finite()
        or not ZERO <= percent <= HUNDRED
        or percent != percent.quantize(Decimal("0.01"))
    ):
        raise InvalidInput(
            "percent is from 0 to 100 with at most 2 decimals.",
            field="percent",
            code="invalid_percent",
        )
    return percent.quantize(Decimal("0.01"))


def _check_date(value, field: str) -> date:
    # A datetime is a date too in Python: refuse it rather than drop its time silently.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidInput(f"{field} is a date.", field=field, code="invalid_date")
    return value


def agreement_overlaps(
    *,
    app: App,
    basis: str,
    starts_on: date,
    ends_on: date | None,
    exclude: RevenueShareAgreement | None = None,
) -> bool:
    """Whether another agreement of the app and basis is in force on some day of
    [starts_on, ends_on) (open-ended when ends_on is None)."""
    others = RevenueShareAgreement.objects.filter(app=app, basis=basis).filter(
        Q(ends_on__isnull=True) | Q(ends_on__gt=starts_on)
    )
    if ends_on is not None:
        others = others.filter(starts_on__lt=ends_on)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    return others.exists()


def agreement_check(
    *, app: App, basis: str, percent=None, starts_on: date, ends_on: date | None = None
) -> dict:
    """The cleaned fields of a new agreement, or the error it would raise (admin's form
    calls this to show errors by the field; agreement_create calls it again under a lock)."""
    if basis not in Basis.values:
        raise InvalidInput(
            f"basis is one of {', '.join(Basis.values)}.", field="basis", code="invalid_basis"
        )
    if percent is None or percent == "":
        percent = app.partner.revenue_share_percent
        if percent is None:
            raise InvalidInput(
                "The partner has no tier, so its share has no default: give a percent.",
                field="percent",
                code="percent_required",
            )
    percent = _clean_percent(percent)
    starts_on = _check_date(starts_on, "starts_on")
    if ends_on is not None:
        ends_on = _check_date(ends_on, "ends_on")
        if ends_on <= starts_on:
            raise InvalidInput(
                "ends_on is after starts_on.", field="ends_on", code="invalid_period"
            )
    if agreement_overlaps(app=app, basis=basis, starts_on=starts_on, ends_on=ends_on):
        raise Conflict(
            f"{app.name} already has a {basis.replace('_', ' ')} agreement in force on some "
            "of these days: end it first.",
            field="starts_on",
            code="agreement_overlaps",
        )
    return {"basis": basis, "percent": percent, "starts_on": starts_on, "ends_on": ends_on}


def agreement_create(
    *,
    actor: Actor,
    app: App,
    basis: str,
    percent=None,
    starts_on: date,
    ends_on: date | None = None,
    note: str = "",
) -> RevenueShareAgreement:
    """A partner's share of one app's revenue; `percent` defaults to the partner's tier's.

    Lines already paid in its period are accrued by the next `revenue_accrue` (an agreement
    may be made after the fact)."""
    if not isinstance(note, str) or len(note) > 300:
        raise InvalidInput("note is text of at most 300 characters.", field="note")
    with transaction.atomic():
        # The app's row lock serializes agreements of one app: two racing requests cannot
        # both pass the overlap check.
        locked = (
            App.objects.select_for_update(of=("self",))
            .select_related("partner__tier", "partner__organization")
            .get(pk=app.pk)
        )
        cleaned = agreement_check(
            app=locked, basis=basis, percent=percent, starts_on=starts_on, ends_on=ends_on
        )
        agreement = RevenueShareAgreement.objects.create(
            app=locked, note=note.strip(), created_by=actor.user, **cleaned
        )
        audit_record(
            actor=actor,
            action="revenue_agreement.created",
            organization=locked.partner.organization,
            target=agreement,
            changes={
                "app": locked.slug,
                "basis": agreement.basis,
                "percent": str(agreement.percent),
                "starts_on": agreement.starts_on.isoformat(),
                "ends_on": agreement.ends_on.isoformat() if agreement.ends_on else None,
            },
        )
    return agreement


def _line_start():
    """A line's period start: its own (usage lines), else its invoice's (add-on lines)."""
    return Coalesce(F("invoice_line__period_start"), F("invoice__period_start"))


def agreement_end_check(*, agreement: RevenueShareAgreement, ends_on: date) -> date:
    ends_on = _check_date(ends_on, "ends_on")
    if agreement.ends_on is not None and ends_on > agreement.ends_on:
        # Ended is ended: reopening would share lines again under the old terms.
        raise Conflict(
            f"This agreement already ended on {agreement.ends_on.isoformat()}; make a new one.",
            field="ends_on",
            code="agreement_ended",
        )
    if ends_on <= agreement.starts_on:
        raise InvalidInput("ends_on is after starts_on.", field="ends_on", code="invalid_period")
    if agreement_overlaps(
        app=agreement.app,
        basis=agreement.basis,
        starts_on=agreement.starts_on,
        ends_on=ends_on,
        exclude=agreement,
    ):
        raise Conflict(
            "Another agreement starts before that day.", field="ends_on", code="agreement_overlaps"
        )
    boundary = datetime.combine(ends_on, time(0), tzinfo=UTC)
    if (
        RevenueShareEntry.objects.filter(agreement=agreement, kind=Kind.EARNING)
        .annotate(line_start=_line_start())
        .filter(line_start__gte=boundary)
        .exists()
    ):
        # Entries are never changed: the agreement must keep covering what it earned.
        raise Conflict(
            "Earnings were already accrued under this agreement after that day.",
            field="ends_on",
            code="agreement_has_entries",
        )
    return ends_on


def agreement_end(
    *, actor: Actor, agreement: RevenueShareAgreement, ends_on: date
) -> RevenueShareAgreement:
    """Ends the agreement on `ends_on` (exclusive): lines whose period starts that day or
    later are no longer shared under it."""
    with transaction.atomic():
        App.objects.select_for_update().get(pk=agreement.app_id)
        locked = (
            RevenueShareAgreement.objects.select_related("app__partner__organization")
            .select_for_update(of=("self",))
            .get(pk=agreement.pk)
        )
        ends_on = agreement_end_check(agreement=locked, ends_on=ends_on)
        before = locked.ends_on
        locked.ends_on = ends_on
        locked.save(update_fields=["ends_on"])
        audit_record(
            actor=actor,
            action="revenue_agreement.ended",
            organization=locked.app.partner.organization,
            target=locked,
            changes={"ends_on": [before.isoformat() if before else None, ends_on.isoformat()]},
        )
    return locked


def _in_force(agreements: list[RevenueShareAgreement], day: date) -> RevenueShareAgreement | None:
    for agreement in agreements:
        if agreement.starts_on <= day and (agreement.ends_on is None or day < agreement.ends_on):
            return agreement
    return None


# --- Accrual --------------------------------------------------------------------------------
def revenue_accrue(*, until: datetime | None = None) -> int:
    """Earnings for the lines of invoices paid by `until`, and reversals for the credit
    notes issued on them by `until`; returns how many entries it made (0 on a second run)."""
    until = until or timezone.now()
    made = _accrue_price(until) + _accrue_usage(until)
    return made + _accrue_reversals(until)


def _paid_lines(until: datetime):
    return InvoiceLine.objects.filter(
        invoice__status=Invoice.Status.PAID, invoice__paid_at__lte=until
    ).select_related("invoice")


def _agreements_by_app(basis: str) -> dict:
    by_app: dict = {}
    for agreement in RevenueShareAgreement.objects.filter(basis=basis).select_related(
        "app__partner"
    ):
        by_app.setdefault(agreement.app_id, []).append(agreement)
    return by_app


def _earned_lines(agreements: list[RevenueShareAgreement]):
    return RevenueShareEntry.objects.filter(kind=Kind.EARNING, agreement__in=agreements).values(
        "invoice_line_id"
    )


def _period(line: InvoiceLine) -> tuple[datetime, datetime]:
    invoice = line.invoice
    return line.period_start or invoice.period_start, line.period_end or invoice.period_end


def net_factor(invoice: Invoice) -> tuple[Decimal, dict]:
    """What a line is worth after the invoice's coupon, tax excluded: the coupon's discount
    comes off every line pro rata (discount / subtotal), an inclusive tax is carved out the
    same way; an exclusive tax is on top of the lines already. Prepaid credit is a way of
    paying, not a price cut: it changes nothing."""
    inclusive = bool((invoice.tax_rate or {}).get("inclusive"))
    carved = invoice.tax if inclusive else ZERO
    detail = {"subtotal": str(invoice.subtotal), "discount": str(invoice.discount)}
    if inclusive:
        detail["inclusive_tax"] = str(invoice.tax)
    if invoice.subtotal <= 0 or (not invoice.discount and not carved):
        return Decimal(1), detail
    with exact_context():
        factor = (invoice.subtotal - invoice.discount - carved) / invoice.subtotal
    return factor, detail


def _create(entry: RevenueShareEntry) -> bool:
    """Saves the entry unless a concurrent run (or an earlier one) made it: the unique
    constraint decides, inside a savepoint so the rest of the run goes on."""
    try:
        with transaction.atomic():
            if entry.kind == Kind.EARNING and not _still_in_force(entry):
                return False
            entry.save()
    except IntegrityError:
        return False
    return True


def _still_in_force(entry: RevenueShareEntry) -> bool:
    """The run read the agreements once; one may have been ended since. Locking its row
    orders this write against `agreement_end`: either the end waits and then sees this
    entry (refused with agreement_has_entries), or this sees the end and writes nothing."""
    ends_on = (
        RevenueShareAgreement.objects.select_for_update()
        .filter(pk=entry.agreement_id)
        .values_list("ends_on", flat=True)
        .first()
    )
    start = (entry.invoice_line.period_start or entry.invoice.period_start).astimezone(UTC)
    return ends_on is None or start.date() < ends_on


def _earning(
    agreement: RevenueShareAgreement, line: InvoiceLine, base: Decimal, detail: dict
) -> RevenueShareEntry:
    invoice = line.invoice
    base = base.quantize(BASE_QUANTUM, rounding=ROUND_HALF_UP)
    with exact_context():
        share = base * agreement.percent / HUNDRED
    return RevenueShareEntry(
        partner_id=agreement.app.partner_id,
        app_id=agreement.app_id,
        agreement=agreement,
        organization_id=invoice.organization_id,
        kind=Kind.EARNING,
        invoice=invoice,
        invoice_line=line,
        currency=invoice.currency,
        base_amount=base,
        percent=agreement.percent,
        amount=round_money(share, invoice.currency),
        detail={
            "invoice": invoice.number,
            "line_kind": line.kind,
            "line_description": line.description,
            "line_amount": str(line.amount),
            **detail,
        },
        recognized_at=invoice.paid_at,
    )


def _accrue_price(until: datetime) -> int:
    """`app_price`: each paid line of an app's add-on, under the agreement in force on the
    invoice's period start."""
    made = 0
    for app_id, agreements in _agreements_by_app(Basis.APP_PRICE).items():
        lines = (
            _paid_lines(until)
            .filter(kind=InvoiceLine.Kind.ADDON, addon__marketplace_app__id=app_id)
            .exclude(pk__in=_earned_lines(agreements))
            .order_by("invoice__paid_at", "pk")
        )
        for line in lines.iterator(chunk_size=500):
            start, _end = _period(line)
            agreement = _in_force(agreements, start.astimezone(UTC).date())
            if agreement is None or not line.amount:
                continue
            factor, detail = net_factor(line.invoice)
            with exact_context():
                base = line.amount * factor
            made += _create(_earning(agreement, line, base, {**detail, "net_factor": str(factor)}))
    return made


@dataclass
class _AppKeys:
    """The app's twin keys per installing org (the keys its OAuth tokens call with)."""

    app_id: object
    by_org: dict

    @classmethod
    def load(cls, app_id) -> "_AppKeys":
        by_org: dict = {}
        for key_id, organization_id in ApiKey.objects.filter(app_id=app_id).values_list(
            "id", "organization_id"
        ):
            by_org.setdefault(organization_id, set()).add(key_id)
        return cls(app_id=app_id, by_org=by_org)


def _accrue_usage(until: datetime) -> int:
    """`app_usage`: the app's part of each usage (and late-usage adjustment) line of the
    installing orgs' paid invoices: the line's amount x the app's keys' share of the meter's
    live usage in the line's period, read from the ledger now. Only meters that add up
    (count, sum) can be split by key; max, last and unique-count lines are not shared."""
    made = 0
    meters = {meter.code: meter for meter in Meter.objects.all()}
    for app_id, agreements in _agreements_by_app(Basis.APP_USAGE).items():
        keys = _AppKeys.load(app_id)
        installed = set(
            Install.objects.filter(app_id=app_id).values_list("organization_id", flat=True)
        )
        organizations = installed & set(keys.by_org)
        if not organizations:
            continue
        earliest = min(agreement.starts_on for agreement in agreements)
        lines = (
            _paid_lines(until)
            .filter(
                kind__in=USAGE_KINDS,
                invoice__organization_id__in=organizations,
                invoice__period_end__gt=datetime.combine(earliest, time(0), tzinfo=UTC),
            )
            .exclude(amount=0)
            .exclude(pk__in=_earned_lines(agreements))
            .select_related("charge__version")
            .order_by("invoice__paid_at", "pk")
        )
        for line in lines.iterator(chunk_size=500):
            start, end = _period(line)
            agreement = _in_force(agreements, start.astimezone(UTC).date())
            meter = meters.get(line.meter)
            if agreement is None or meter is None or meter.aggregation not in ADDITIVE:
                continue
            share = _usage_share(line, meter, start, end, keys.by_org[line.invoice.organization_id])
            if share is None:
                continue
            ratio, detail = share
            factor, net_detail = net_factor(line.invoice)
            commitment = ZERO
            if line.kind == InvoiceLine.Kind.USAGE and line.charge is not None:
                # The committed-use discount took this percent off every usage line.
                commitment = line.charge.version.commitment_discount_percent or ZERO
            with exact_context():
                base = line.amount * ratio * (HUNDRED - commitment) / HUNDRED * factor
            detail.update(net_detail)
            detail.update(
                {
                    "ratio": format_exact(ratio),
                    "commitment_discount_percent": str(commitment),
                    "net_factor": str(factor),
                }
            )
            made += _create(_earning(agreement, line, base, detail))
    return made


def _usage_share(
    line: InvoiceLine, meter: Meter, start: datetime, end: datetime, app_keys: set
) -> tuple[Decimal, dict] | None:
    """(the app's keys' part of the meter's usage in [start, end), its quantities), or None
    when the app made none of it."""
    rows = usage_aggregate(
        UsageFilter(
            organization_id=line.invoice.organization_id,
            meter=meter,
            start=start,
            end=end,
            group_by=("key",),
        )
    )
    total = sum((row["quantity"] or ZERO for row in rows), ZERO)
    app_quantity = sum((row["quantity"] or ZERO for row in rows if row["key"] in app_keys), ZERO)
    if app_quantity <= 0 or total <= 0:
        return None
    with exact_context():
        ratio = min(app_quantity / total, Decimal(1))
    return ratio, {
        "meter": meter.code,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "app_quantity": format_exact(app_quantity),
        "total_quantity": format_exact(total),
        "line_quantity": None if line.quantity is None else format_exact(line.quantity),
    }


def _accrue_reversals(until: datetime) -> int:
    """Each credit note (refunded or credited) on an invoice with earnings reverses each
    earning pro rata: note / invoice total. Reversals are computed on the running total
    credited (rounded at each step), so they never exceed the earning and a fully credited
    invoice reverses it exactly."""
    notes_by = CreditNote.objects.filter(invoice=OuterRef("invoice"), created_at__lte=until)
    reversed_by = RevenueShareEntry.objects.filter(reverses=OuterRef("pk"), kind=Kind.REVERSAL)
    earnings = (
        RevenueShareEntry.objects.filter(kind=Kind.EARNING, invoice__credit_notes__isnull=False)
        .distinct()
        .annotate(
            note_count=Coalesce(
                Subquery(notes_by.order_by().values("invoice").annotate(n=Count("pk")).values("n")),
                0,
            ),
            reversal_count=Coalesce(
                Subquery(
                    reversed_by.order_by().values("reverses").annotate(n=Count("pk")).values("n")
                ),
                0,
            ),
        )
        .filter(note_count__gt=F("reversal_count"))
        .select_related("invoice")
        .order_by("pk")
    )
    made = 0
    for earning in earnings:
        invoice = earning.invoice
        if _paid_by_any_means(invoice) <= 0:
            continue
        notes = list(
            CreditNote.objects.filter(invoice=invoice, created_at__lte=until).order_by(
                "created_at", "number"
            )
        )
        done = set(
            RevenueShareEntry.objects.filter(reverses=earning, kind=Kind.REVERSAL).values_list(
                "credit_note_id", flat=True
            )
        )
        credited = ZERO
        for note in notes:
            before, credited = credited, credited + note.amount
            if note.pk in done:
                continue
            made += _create(_reversal(earning, note, before, credited))
    return made


def _paid_by_any_means(invoice) -> Decimal:
    return invoice.total + invoice.credits


def _part(value: Decimal, credited: Decimal, total: Decimal, quantize) -> Decimal:
    with exact_context():
        fraction = min(credited / total, Decimal(1))
        return quantize(value * fraction)


def _reversal(
    earning: RevenueShareEntry, note: CreditNote, before: Decimal, after: Decimal
) -> RevenueShareEntry:
    # What the customer paid by any means: a credit note gives back part of the total, while
    # what prepaid credit paid stays paid (credit is a way of paying, as in the base).
    total, currency = _paid_by_any_means(earning.invoice), earning.currency

    def money(value: Decimal) -> Decimal:
        return round_money(value, currency)

    def base(value: Decimal) -> Decimal:
        return value.quantize(BASE_QUANTUM, rounding=ROUND_HALF_UP)

    amount = _part(earning.amount, after, total, money) - _part(
        earning.amount, before, total, money
    )
    base_amount = _part(earning.base_amount, after, total, base) - _part(
        earning.base_amount, before, total, base
    )
    return RevenueShareEntry(
        partner_id=earning.partner_id,
        app_id=earning.app_id,
        agreement_id=earning.agreement_id,
        organization_id=earning.organization_id,
        kind=Kind.REVERSAL,
        invoice_id=earning.invoice_id,
        invoice_line_id=earning.invoice_line_id,
        credit_note=note,
        reverses=earning,
        currency=currency,
        base_amount=-base_amount,
        percent=earning.percent,
        amount=-amount,
        detail={
            "invoice": earning.invoice.number,
            "credit_note": note.number,
            "credit_note_amount": str(note.amount),
            "refunded": note.refunded,
            "invoice_total": str(total),
            "credited_before": str(before),
            "credited_after": str(after),
        },
        # Never before the earning it reverses (a note on an open invoice precedes payment).
        recognized_at=max(note.created_at, earning.recognized_at),
    )
