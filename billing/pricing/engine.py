"""Price models: per_unit, graduated, volume and package, with free units and min/max.

Semantics follow Stripe's tiers: the free allowance is taken off the quantity before any
tier applies; in `graduated` each unit is priced in the tier it falls in and a tier's flat
amount is charged once when any unit falls in it; in `volume` every unit is priced at the
tier the total reaches, with that tier's flat amount; `package` charges per started block.
Zero billable units cost nothing (no tier is reached). The charge's minimum and maximum
bound the line's amount, the minimum applying even with no usage. The line amount is
rounded once (money.round_money); tier amounts stay exact.
"""

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from billing.pricing.money import ZERO, exact_context, round_money

MODELS = ("per_unit", "graduated", "volume", "package")


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # None: no upper bound (the last tier)
    unit_amount: Decimal = ZERO
    flat_amount: Decimal = ZERO


@dataclass(frozen=True)
class ChargeSpec:
    """One metered charge, as the engine needs it (built from a Charge row or a dict)."""

    meter: str
    model: str
    free_units: Decimal = ZERO
    unit_amount: Decimal = ZERO  # per_unit
    tiers: tuple[Tier, ...] = ()  # graduated and volume
    package_size: Decimal | None = None  # package
    package_amount: Decimal = ZERO
    minimum: Decimal | None = None
    maximum: Decimal | None = None


@dataclass(frozen=True)
class TierLine:
    start: Decimal  # units above this...
    up_to: Decimal | None  # ...up to and including this
    quantity: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal  # exact


@dataclass
class ChargeLine:
    meter: str
    quantity: Decimal
    billable_quantity: Decimal
    exact_amount: Decimal  # before min/max and rounding
    amount: Decimal  # rounded, bounded: what is billed
    tiers: list[TierLine] = field(default_factory=list)
    adjusted_by: str | None = None  # "minimum" or "maximum" when a bound applied


def price_charge(spec: ChargeSpec, quantity: Decimal, currency: str) -> ChargeLine:
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    with exact_context():  # tier amounts exact, so the line is rounded once, below
        billable = max(quantity - spec.free_units, ZERO)
        tiers = _tier_lines(spec, billable)
        exact = sum((tier.amount for tier in tiers), ZERO)
    bounded, adjusted_by = exact, None
    if spec.minimum is not None and bounded < spec.minimum:
        bounded, adjusted_by = spec.minimum, "minimum"
    if spec.maximum is not None and bounded > spec.maximum:
        bounded, adjusted_by = spec.maximum, "maximum"
    return ChargeLine(
        meter=spec.meter,
        quantity=quantity,
        billable_quantity=billable,
        exact_amount=exact,
        amount=round_money(bounded, currency),
        tiers=tiers,
        adjusted_by=adjusted_by,
    )


def _tier_lines(spec: ChargeSpec, billable: Decimal) -> list[TierLine]:
    if billable == 0:
        return []
    if spec.model == "per_unit":
        return [TierLine(ZERO, None, billable, spec.unit_amount, ZERO, billable * spec.unit_amount)]
    if spec.model == "package":
        size = spec.package_size
        # A started block is a whole block. (Not -(-a // b): Decimal's // truncates toward
        # zero, so that idiom is a ceiling for ints only.)
        blocks = (billable / size).to_integral_value(rounding=ROUND_CEILING)
        return [TierLine(ZERO, None, billable, ZERO, ZERO, blocks * spec.package_amount)]
    if spec.model == "graduated":
        lines, start = [], ZERO
        for tier in spec.tiers:
            top = billable if tier.up_to is None else min(billable, tier.up_to)
            in_tier = top - start
            if in_tier > 0:
                amount = in_tier * tier.unit_amount + tier.flat_amount
                lines.append(
                    TierLine(start, tier.up_to, in_tier, tier.unit_amount, tier.flat_amount, amount)
                )
            if tier.up_to is None or billable <= tier.up_to:
                break
            start = tier.up_to
        return lines
    if spec.model == "volume":
        start = ZERO
        for tier in spec.tiers:
            if tier.up_to is None or billable <= tier.up_to:
                amount = billable * tier.unit_amount + tier.flat_amount
                return [
                    TierLine(
                        start, tier.up_to, billable, tier.unit_amount, tier.flat_amount, amount
                    )
                ]
            start = tier.up_to
        raise ValueError("the last tier must have no upper bound")
    raise ValueError(f"unknown price model {spec.model!r}")


def validate_tiers(tiers: tuple[Tier, ...]) -> str | None:
    """Why these tiers are unusable, or None: bounds strictly increase, the last is open."""
    if not tiers:
        return "Give at least one tier."
    previous = ZERO
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if tier.up_to is None and not last:
            return "Only the last tier may have no upper bound (up_to: null)."
        if last and tier.up_to is not None:
            return "The last tier must have no upper bound (up_to: null)."
        if tier.up_to is not None and tier.up_to <= previous:
            return "Tier bounds (up_to) must increase."
        if tier.unit_amount < 0 or tier.flat_amount < 0:
            return "Tier amounts must not be negative."
        if tier.up_to is not None:
            previous = tier.up_to
    return None
