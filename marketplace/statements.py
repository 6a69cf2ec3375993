"""Monthly partner statements (MKT-4): closing a month, and the reads that show and export one.

Closing a month makes one statement per partner and currency out of the revenue-share
entries recognized before the month's end that no statement holds yet (a late entry lands on
the next one), and carries a negative balance (more reversed than earned) into the next
month until earnings cover it. A statement is never changed once made: its lines are the
entries that point at it, each traceable to the invoice line (and the credit note, for a
reversal) it came from, so rendering it again gives the same bytes.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from uuid import UUID

from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from billing.models import DocumentSequence
from billing.pricing.money import ZERO, format_exact, format_money, round_money
from common.errors import Conflict, InvalidInput, NotFound
from marketplace.models import Partner, PartnerStatement, RevenueShareEntry
from marketplace.revenue import revenue_accrue
from portal.audit import Actor, audit_record

STATEMENTS_ACTOR = Actor.system("statements")
NUMBER_PREFIX = "PS"


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's first instant, in UTC (statements,
    like invoices' periods, follow UTC)."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return (
        datetime.combine(month, time.min, tzinfo=UTC),
        datetime.combine(following, time.min, tzinfo=UTC),
    )


def _check_month(month) -> date:
    if not isinstance(month, date) or isinstance(month, datetime) or month.day != 1:
        raise InvalidInput("Give the month as its first day (2026-11-01).", code="invalid_month")
    return month


def _reserve_number(month: date) -> str:
    """The month's next number, PS-2026-11-0001: the sequence row is locked until the
    statement commits, and a rolled-back close gives its number back, so there are no gaps."""
    prefix = f"{NUMBER_PREFIX}-{month:%Y-%m}"
    DocumentSequence.objects.get_or_create(prefix=prefix)
    sequence = DocumentSequence.objects.select_for_update().get(prefix=prefix)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return f"{prefix}-{sequence.last_number:04d}"


def _to_close(month: date, end: datetime) -> list[tuple[UUID, str]]:
    """(partner id, currency) pairs that may get a statement for `month`: with entries not
    yet on a statement, or whose latest earlier statement closed negative."""
    unstated = RevenueShareEntry.objects.filter(
        statement__isnull=True, recognized_at__lt=end
    ).values_list("partner_id", "currency")
    latest_month = (
        PartnerStatement.objects.filter(
            partner=OuterRef("partner"), currency=OuterRef("currency"), month__lt=month
        )
        .order_by("-month")
        .values("month")[:1]
    )
    negative = PartnerStatement.objects.filter(
        month__lt=month, closing_balance__lt=0, month=Subquery(latest_month)
    ).values_list("partner_id", "currency")
    pairs = set(unstated.distinct()) | set(negative)
    return sorted(pairs, key=lambda pair: (str(pair[0]), pair[1]))


def _statement_close(
    *, partner_id: UUID, currency: str, month: date, end: datetime, actor: Actor
) -> PartnerStatement | None:
    with transaction.atomic():
        # The partner's row lock serializes closes of its statements: a concurrent run waits
        # here, then finds the statement made and leaves. The unique constraint backs it up.
        partner = (
            Partner.objects.select_for_update().select_related("organization").get(pk=partner_id)
        )
        # A statement for this month or a later one already took every entry recognized
        # before this month's end (closing months out of order makes nothing twice).
        if PartnerStatement.objects.filter(
            partner=partner, currency=currency, month__gte=month
        ).exists():
            return None
        previous = (
            PartnerStatement.objects.filter(partner=partner, currency=currency, month__lt=month)
            .order_by("-month")
            .first()
        )
        opening = previous.closing_balance if previous and previous.closing_balance < 0 else ZERO
        entries = list(
            RevenueShareEntry.objects.filter(
                partner=partner, currency=currency, statement__isnull=True, recognized_at__lt=end
            ).values_list("id", "kind", "amount")
        )
        if not entries and opening == 0:
            return None
        earned = sum((a for _, k, a in entries if k == RevenueShareEntry.Kind.EARNING), ZERO)
        reversed_ = sum((a for _, k, a in entries if k == RevenueShareEntry.Kind.REVERSAL), ZERO)
        earnings = round_money(earned, currency)
        reversals = round_money(reversed_, currency)
        closing = round_money(opening + earnings + reversals, currency)
        statement = PartnerStatement.objects.create(
            partner=partner,
            number=_reserve_number(month),
            month=month,
            currency=currency,
            opening_balance=opening,
            earnings=earnings,
            reversals=reversals,
            closing_balance=closing,
            payable=max(closing, ZERO),
        )
        RevenueShareEntry.objects.filter(
            pk__in=[entry_id for entry_id, _, _ in entries], statement__isnull=True
        ).update(statement=statement)
        audit_record(
            actor=actor,
            action="partner_statement.closed",
            organization=partner.organization,
            target=statement,
            changes={
                "month": month.isoformat(),
                "currency": currency,
                "lines": len(entries),
                **{
                    name: format_money(getattr(statement, name), currency)
                    for name in ("opening_balance", "earnings", "reversals", "closing_balance")
                },
                "payable": format_money(statement.payable, currency),
            },
        )
    return statement


def statements_close(
    *, month: date, now: datetime | None = None, actor: Actor | None = None
) -> list[PartnerStatement]:
    """Closes `month` (its first day): accrues the revenue share up to the month's end, then
    makes each partner's statement per currency. Idempotent and safe to run concurrently: a
    second run makes nothing. Returns the month's statements, made now or by an earlier run,
    in number order. A month that has not ended is refused (`month_not_ended`)."""
    month = _check_month(month)
    _, end = month_bounds(month)
    if (now or timezone.now()) < end:
        raise Conflict(
            f"{month:%B %Y} has not ended yet: close it from {end:%Y-%m-%d}.",
            code="month_not_ended",
        )
    revenue_accrue(until=end)
    for partner_id, currency in _to_close(month, end):
        _statement_close(
            partner_id=partner_id,
            currency=currency,
            month=month,
            end=end,
            actor=actor or STATEMENTS_ACTOR,
        )
    return list(
        PartnerStatement.objects.filter(month=month)
        .select_related("partner__organization")
        .order_by("number")
    )


# --- Reads -----------------------------------------------------------------------------------
def statement_list(*, partner: Partner) -> QuerySet[PartnerStatement]:
    """The partner's statements, newest month first, with their payout (if any)."""
    return (
        PartnerStatement.objects.filter(partner=partner)
        .select_related("payout")
        .order_by("-month", "currency")
    )


def statement_get(*, partner: Partner | None, statement_id) -> PartnerStatement:
    """One of the partner's statements; another partner's is NotFound, like a missing one."""
    statement = (
        PartnerStatement.objects.select_related("partner__organization")
        .filter(partner=partner, pk=statement_id)
        .first()
        if partner is not None
        else None
    )
    if statement is None:
        raise NotFound("No such statement.", code="statement_not_found")
    return statement


@dataclass(frozen=True)
class StatementLine:
    """One entry of a statement, with what it is traced to."""

    entry_id: int
    recognized_at: datetime
    kind: str
    app_name: str
    invoice_number: str
    invoice_line_id: str
    invoice_line_description: str
    credit_note_number: str
    base_amount: Decimal
    percent: Decimal
    amount: Decimal

    @property
    def date(self) -> date:
        return self.recognized_at.astimezone(UTC).date()


def statement_lines(*, statement: PartnerStatement) -> list[StatementLine]:
    """The statement's lines in a stable order: when recognized, then as written."""
    entries = (
        RevenueShareEntry.objects.filter(statement=statement)
        .select_related("app", "invoice", "invoice_line", "credit_note")
        .order_by("recognized_at", "id")
    )
    return [
        StatementLine(
            entry_id=entry.id,
            recognized_at=entry.recognized_at,
            kind=entry.kind,
            app_name=entry.app.name,
            invoice_number=entry.invoice.number or "",
            invoice_line_id=str(entry.invoice_line_id),
            invoice_line_description=entry.invoice_line.description,
            credit_note_number=entry.credit_note.number if entry.credit_note else "",
            base_amount=entry.base_amount,
            percent=entry.percent,
            amount=entry.amount,
        )
        for entry in entries
    ]


def _exact_money(amount: Decimal, currency: str) -> str:
    """A base to the minor unit ("100.00"), or with every digit it has when it is a part of a
    line ("-6.666666666667", a third credited): the CSV reproduces the share exactly."""
    if round_money(amount, currency) == amount:
        return format_money(amount, currency)
    return format_exact(amount)


STATEMENT_CSV_COLUMNS = [
    "statement",
    "line",
    "recognized_at",
    "kind",
    "app",
    "invoice",
    "invoice_line_id",
    "invoice_line",
    "credit_note",
    "currency",
    "base_amount",
    "percent",
    "amount",
]


def statement_csv_rows(*, statement: PartnerStatement) -> Iterator[list]:
    """The statement's lines as CSV rows (STATEMENT_CSV_COLUMNS), amounts to the minor unit."""
    currency = statement.currency
    for line in statement_lines(statement=statement):
        yield [
            statement.number,
            line.entry_id,
            line.recognized_at.astimezone(UTC).isoformat(),
            line.kind,
            line.app_name,
            line.invoice_number,
            line.invoice_line_id,
            line.invoice_line_description,
            line.credit_note_number,
            currency,
            _exact_money(line.base_amount, currency),
            format(line.percent, "f"),
            format_money(line.amount, currency),
        ]
