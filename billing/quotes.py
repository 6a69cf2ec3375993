"""Quotes: a plan's prices applied to usage, as lines with totals.

The calculator (`POST /api/v1/pricing/quote`), the bill preview, estimates and, with the
billing issue, invoices all build their figures here, on the engine in billing/pricing, so
they cannot disagree. A quote is a list of segments (one per plan version in force during
the period) plus what applies to the whole: add-ons, coupon, credits, tax.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billing.catalog import charge_spec
from billing.models import AddOn, Charge, Coupon, PlanVersion
from billing.pricing.engine import ChargeLine, price_charge
from billing.pricing.money import ZERO, exact_context, format_exact, format_money, round_money

HUNDRED = Decimal(100)


@dataclass
class Segment:
    """A plan version in force for part of a period: its share of the base fee, its usage."""

    version: PlanVersion
    usage: dict[str, Decimal]
    base_fee_share: Decimal = Decimal(1)  # 1 for a whole period; e.g. 0.5 for half of it
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    fee_only: bool = False  # the base fee alone (a pay-in-advance opening invoice)


@dataclass
class QuoteLine:
    kind: str  # base_fee, usage, commitment_discount, commitment_true_up, addon, discount, credit
    description: str
    amount: Decimal
    meter: str | None = None
    quantity: Decimal | None = None
    charge: ChargeLine | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    source: Charge | None = None  # the plan's charge a usage line priced
    extra: dict = field(default_factory=dict)  # what invoices keep beside (adjusted line, add-on)


@dataclass(frozen=True)
class TaxSpec:
    """A tax rate as quotes apply it: exclusive adds to the total, inclusive is carved out."""

    name: str
    percent: Decimal
    inclusive: bool = False


@dataclass
class Quote:
    currency: str
    plan: str
    version: int
    lines: list[QuoteLine] = field(default_factory=list)
    subtotal: Decimal = ZERO
    discount: Decimal = ZERO
    credits: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO
    tax_spec: TaxSpec | None = None


def build_quote(
    *,
    segments: list[Segment],
    addons: list[tuple[AddOn, int]] = (),
    coupon: Coupon | None = None,
    credits_available: Decimal = ZERO,
    extra_lines: list[QuoteLine] = (),
    tax: TaxSpec | None = None,
) -> Quote:
    """Lines, then subtotal; the coupon discounts the subtotal; tax applies to what is left
    (exclusive: added, inclusive: the part of it that is tax); credit pays last, like a
    customer balance, so it also pays the tax. `extra_lines` (an invoice's late-usage
    adjustments) count in the subtotal like any line."""
    last = segments[-1].version
    currency = last.plan.currency
    quote = Quote(currency=currency, plan=last.plan.code, version=last.number, tax_spec=tax)
    for segment in segments:
        quote.lines.extend(_segment_lines(segment, currency, len(segments) > 1))
    quote.lines.extend(extra_lines)
    for addon, quantity in addons:
        quote.lines.append(
            QuoteLine(
                kind="addon",
                description=f"{addon.name}" + (f" x {quantity}" if quantity != 1 else ""),
                amount=round_money(addon.price * quantity, currency),
                quantity=Decimal(quantity),
                # Invoices record which add-on a line bills (a paid marketplace app's price
                # is one), so a partner's revenue share can be traced to it.
                extra={"addon": addon},
            )
        )
    quote.subtotal = sum((line.amount for line in quote.lines), ZERO)
    if coupon is not None:
        quote.discount = _coupon_discount(coupon, quote.subtotal, currency)
        if quote.discount:
            quote.lines.append(
                QuoteLine(
                    kind="discount", description=f"Coupon {coupon.code}", amount=-quote.discount
                )
            )
    taxable = quote.subtotal - quote.discount
    quote.tax = _tax(tax, taxable, currency)
    if quote.tax and not tax.inclusive:
        # An inclusive tax is already inside the lines: it is shown, not added (the lines
        # always sum to the total).
        label = f"{tax.name} {format_exact(tax.percent)}%"
        quote.lines.append(QuoteLine(kind="tax", description=label, amount=quote.tax))
    due = taxable + (ZERO if tax is not None and tax.inclusive else quote.tax)
    quote.credits = min(max(credits_available, ZERO), max(due, ZERO))
    if quote.credits:
        quote.lines.append(
            QuoteLine(kind="credit", description="Prepaid credit applied", amount=-quote.credits)
        )
    quote.total = due - quote.credits
    return quote


def _tax(tax: TaxSpec | None, taxable: Decimal, currency: str) -> Decimal:
    """Rounded once, half up, like every line. Inclusive: taxable x p / (100 + p)."""
    if tax is None or taxable <= 0 or not tax.percent:
        return round_money(ZERO, currency)
    with exact_context():  # exact until the one rounding
        if tax.inclusive:
            exact = taxable * tax.percent / (HUNDRED + tax.percent)
        else:
            exact = taxable * tax.percent / HUNDRED
    return round_money(exact, currency)


def _segment_lines(segment: Segment, currency: str, dated: bool) -> list[QuoteLine]:
    version = segment.version
    suffix = ""
    if dated and segment.starts_at and segment.ends_at:
        suffix = f" ({segment.starts_at:%Y-%m-%d} to {segment.ends_at:%Y-%m-%d})"
    lines = []
    base = round_money(version.base_fee * segment.base_fee_share, currency)
    if version.base_fee:
        lines.append(
            QuoteLine(
                kind="base_fee",
                description=f"{version.plan.name} base fee{suffix}",
                amount=base,
                starts_at=segment.starts_at,
                ends_at=segment.ends_at,
            )
        )
    if segment.fee_only:
        return lines
    usage_total = ZERO
    for charge in version.charges.all():
        quantity = segment.usage.get(charge.meter.code, ZERO)
        priced = price_charge(charge_spec(charge), quantity, currency)
        usage_total += priced.amount
        lines.append(
            QuoteLine(
                kind="usage",
                description=f"{charge.meter.name}{suffix}",
                amount=priced.amount,
                meter=charge.meter.code,
                quantity=quantity,
                charge=priced,
                starts_at=segment.starts_at,
                ends_at=segment.ends_at,
                source=charge,
            )
        )
    if version.commitment_discount_percent and usage_total:
        discount = round_money(
            usage_total * version.commitment_discount_percent / HUNDRED, currency
        )
        lines.append(
            QuoteLine(
                kind="commitment_discount",
                description="Committed-use discount "
                f"{format_exact(version.commitment_discount_percent)}%",
                amount=-discount,
            )
        )
    if version.minimum_commitment:
        minimum = round_money(version.minimum_commitment * segment.base_fee_share, currency)
        spent = sum((line.amount for line in lines), ZERO)
        if spent < minimum:
            lines.append(
                QuoteLine(
                    kind="commitment_true_up",
                    description=f"Minimum commitment{suffix}",
                    amount=minimum - spent,
                )
            )
    return lines


def _coupon_discount(coupon: Coupon, subtotal: Decimal, currency: str) -> Decimal:
    if subtotal <= 0 or not coupon.active:
        return ZERO
    if coupon.kind == Coupon.Kind.PERCENT:
        return round_money(subtotal * (coupon.percent_off or ZERO) / HUNDRED, currency)
    if coupon.currency and coupon.currency != currency:
        return ZERO
    return min(round_money(coupon.amount_off or ZERO, currency), subtotal)


def quote_as_json(quote: Quote) -> dict:
    """The API's shape: amounts as strings with the currency's digits, tiers exact."""
    currency = quote.currency

    def line_json(line: QuoteLine) -> dict:
        # Every line has the same keys (null or [] where they do not apply), so clients can
        # read `meter`, `quantity` and `tiers` without checking that they are there.
        body = {
            "kind": line.kind,
            "description": line.description,
            "meter": line.meter,
            "quantity": None if line.quantity is None else format_exact(line.quantity),
            "amount": format_money(line.amount, currency),
            "tiers": [],
        }
        if line.starts_at:
            body["period"] = {"start": line.starts_at.isoformat(), "end": line.ends_at.isoformat()}
        if line.charge is not None:
            body["billable_quantity"] = format_exact(line.charge.billable_quantity)
            body["adjusted_by"] = line.charge.adjusted_by
            body["tiers"] = [
                {
                    "from": format_exact(tier.start),
                    "up_to": None if tier.up_to is None else format_exact(tier.up_to),
                    "quantity": format_exact(tier.quantity),
                    "unit_amount": format_exact(tier.unit_amount),
                    "flat_amount": format_exact(tier.flat_amount),
                    "amount": format_exact(tier.amount),
                }
                for tier in line.charge.tiers
            ]
        return body

    return {
        "plan": quote.plan,
        "version": quote.version,
        "currency": currency,
        "lines": [line_json(line) for line in quote.lines],
        "subtotal": format_money(quote.subtotal, currency),
        "discount": format_money(quote.discount, currency),
        "credits": format_money(quote.credits, currency),
        "tax": format_money(quote.tax, currency),
        "total": format_money(quote.total, currency),
    }
