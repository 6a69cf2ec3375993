"""Properties of the pricing engine that hold for every price and quantity (hypothesis)."""

from decimal import ROUND_CEILING, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing.engine import ChargeSpec, Tier, price_charge, validate_tiers
from billing.pricing.money import MINOR_UNITS, exact_context, format_money, quantum, round_money

CURRENCIES = st.sampled_from(["USD", "JPY", "BHD"])
# Quantities as the ledger holds them: up to 12 decimals. Mostly whole numbers, as most
# meters count; fractional ones for sums such as GPU-seconds.
quantities = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(Decimal),
    st.decimals(min_value=0, max_value=10**9, places=12, allow_nan=False, allow_infinity=False),
)
prices = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
flat_amounts = st.one_of(st.just(Decimal(0)), prices)


@st.composite
def tier_lists(draw, max_tiers: int = 5) -> tuple[Tier, ...]:
    bounds = sorted(
        set(
            draw(
                st.lists(
                    st.integers(min_value=1, max_value=10**7).map(Decimal),
                    max_size=max_tiers - 1,
                )
            )
        )
    )
    tiers = [Tier(bound, draw(prices), draw(flat_amounts)) for bound in bounds]
    tiers.append(Tier(None, draw(prices), draw(flat_amounts)))
    assert validate_tiers(tuple(tiers)) is None
    return tuple(tiers)


def spec(model: str, tiers=(), **extra) -> ChargeSpec:
    return ChargeSpec(meter="m", model=model, tiers=tuple(tiers), **extra)


@settings(max_examples=300)
@given(tiers=tier_lists(), first=quantities, second=quantities, currency=CURRENCIES)
def test_graduated_totals_are_monotone_in_quantity(tiers, first, second, currency):
    low, high = sorted((first, second))
    charge = spec("graduated", tiers)
    low_line, high_line = price_charge(charge, low, currency), price_charge(charge, high, currency)
    assert low_line.exact_amount <= high_line.exact_amount
    assert low_line.amount <= high_line.amount


@given(tiers=tier_lists(), data=st.data(), currency=CURRENCIES)
def test_volume_and_graduated_agree_inside_the_first_tier(tiers, data, currency):
    first_bound = tiers[0].up_to if tiers[0].up_to is not None else Decimal(10**9)
    quantity = data.draw(st.decimals(min_value=0, max_value=first_bound, places=6, allow_nan=False))
    graduated = price_charge(spec("graduated", tiers), quantity, currency)
    volume = price_charge(spec("volume", tiers), quantity, currency)
    assert graduated.exact_amount == volume.exact_amount
    assert graduated.amount == volume.amount


@given(
    size=st.integers(min_value=1, max_value=10**6).map(Decimal),
    block_price=prices,
    quantity=quantities,
    currency=CURRENCIES,
)
def test_package_pricing_charges_every_started_block(size, block_price, quantity, currency):
    line = price_charge(
        spec("package", package_size=size, package_amount=block_price), quantity, currency
    )
    with exact_context():
        blocks = (quantity / size).to_integral_value(rounding=ROUND_CEILING)
        # The blocks cover the quantity, and one block fewer would not.
        assert blocks * size >= quantity > (blocks - 1) * size or quantity == 0
        assert line.exact_amount == blocks * block_price
        assert line.amount == round_money(blocks * block_price, currency)


@given(
    model=st.sampled_from(["per_unit", "graduated", "volume", "package"]),
    tiers=tier_lists(),
    unit_price=prices,
    free=quantities,
    quantity=quantities,
    currency=CURRENCIES,
)
def test_the_free_allowance_comes_off_before_any_tier(
    model, tiers, unit_price, free, quantity, currency
):
    common = {
        "tiers": tiers,
        "unit_amount": unit_price,
        "package_size": Decimal(100),
        "package_amount": unit_price,
    }
    with_free = price_charge(spec(model, free_units=free, **common), quantity, currency)
    without = price_charge(spec(model, **common), max(quantity - free, Decimal(0)), currency)
    assert with_free.amount == without.amount
    assert with_free.tiers == without.tiers
    if quantity <= free:  # at or inside the allowance: nothing, not even a flat fee
        assert with_free.amount == 0 and with_free.tiers == []


@given(
    model=st.sampled_from(["per_unit", "graduated", "volume", "package"]),
    tiers=tier_lists(),
    unit_price=prices,
    currency=CURRENCIES,
)
def test_zero_usage_costs_nothing_in_every_model(model, tiers, unit_price, currency):
    charge = spec(
        model,
        tiers,
        unit_amount=unit_price,
        package_size=Decimal(10),
        package_amount=unit_price,
    )
    line = price_charge(charge, Decimal(0), currency)
    assert line.amount == 0
    assert format_money(line.amount, currency) == format_money(Decimal(0), currency)


@st.composite
def bounds(draw):
    """A minimum and/or maximum in whole minor units, the minimum not above the maximum."""
    values = sorted(draw(st.lists(st.integers(0, 10**6), min_size=2, max_size=2)))
    minimum = draw(st.sampled_from([None, values[0]]))
    maximum = draw(st.sampled_from([None, values[1]]))
    return minimum, maximum


@settings(max_examples=300)
@given(tiers=tier_lists(), quantity=quantities, bound=bounds(), currency=CURRENCIES)
def test_minimum_and_maximum_bound_the_line(tiers, quantity, bound, currency):
    minimum, maximum = (None if b is None else Decimal(b) * quantum(currency) for b in bound)
    line = price_charge(
        spec("graduated", tiers, minimum=minimum, maximum=maximum), quantity, currency
    )
    if minimum is not None:
        assert line.amount >= minimum
    if maximum is not None:
        assert line.amount <= maximum
    expected = line.exact_amount
    if minimum is not None and expected < minimum:
        expected = minimum
    if maximum is not None and expected > maximum:
        expected = maximum
    assert line.amount == round_money(expected, currency)
    # Bounds at their boundary: exactly the minimum or maximum is not an adjustment.
    adjusted = (minimum is not None and line.exact_amount < minimum) or (
        maximum is not None and line.exact_amount > maximum
    )
    assert (line.adjusted_by is not None) == adjusted


@settings(max_examples=300)
@given(
    model=st.sampled_from(["graduated", "volume"]),
    tiers=tier_lists(),
    quantity=quantities,
    currency=CURRENCIES,
)
def test_rounding_happens_once_at_the_line(model, tiers, quantity, currency):
    line = price_charge(spec(model, tiers), quantity, currency)
    with exact_context():  # the test's own sums must not round either
        exact = sum(
            (tier.quantity * tier.unit_amount + tier.flat_amount for tier in line.tiers), Decimal(0)
        )
        assert line.exact_amount == exact  # tier amounts are exact, never rounded
        assert line.amount == round_money(exact, currency)
        assert abs(line.amount - exact) <= quantum(currency) / 2


@settings(max_examples=300)
@given(tiers=tier_lists(), quantity=quantities)
def test_graduated_tiers_split_the_quantity_and_charge_each_reached_flat_once(tiers, quantity):
    line = price_charge(spec("graduated", tiers), quantity, "USD")
    assert sum((tier.quantity for tier in line.tiers), Decimal(0)) == quantity
    reached = [tier for tier in tiers if quantity > 0 and _start_of(tiers, tier) < quantity]
    assert len(line.tiers) == len(reached)
    with exact_context():
        assert line.exact_amount == sum(
            (tier.quantity * tier.unit_amount + tier.flat_amount for tier in line.tiers), Decimal(0)
        )
    assert [tier.flat_amount for tier in line.tiers] == [tier.flat_amount for tier in reached]


@given(tiers=tier_lists(), quantity=quantities.filter(lambda q: q > 0))
def test_volume_prices_every_unit_at_the_reached_tier_only(tiers, quantity):
    line = price_charge(spec("volume", tiers), quantity, "USD")
    [reached] = line.tiers
    tier = next(t for t in tiers if t.up_to is None or quantity <= t.up_to)
    assert (reached.quantity, reached.unit_amount, reached.flat_amount) == (
        quantity,
        tier.unit_amount,
        tier.flat_amount,
    )
    with exact_context():
        assert line.exact_amount == quantity * tier.unit_amount + tier.flat_amount


def _start_of(tiers, tier) -> Decimal:
    index = tiers.index(tier)
    return Decimal(0) if index == 0 else tiers[index - 1].up_to


@given(
    value=st.decimals(min_value=-(10**12), max_value=10**12, allow_nan=False, places=8),
    currency=st.sampled_from(sorted(MINOR_UNITS)),
)
def test_formatted_amounts_have_exactly_the_currency_digits(value, currency):
    shown = format_money(value, currency)
    digits = MINOR_UNITS[currency]
    _whole, _point, fraction = shown.partition(".")
    assert len(fraction) == digits
    assert "E" not in shown and "e" not in shown
    assert shown.lstrip("-") == shown or Decimal(shown) != 0  # never "-0.00"
    assert Decimal(shown) == round_money(value, currency)


@given(value=st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False))
def test_half_up_rounding_rounds_ties_away_from_zero(value):
    for currency in ("USD", "JPY", "BHD"):
        step = quantum(currency)
        rounded = round_money(value, currency)
        assert abs(rounded - value) <= step / 2
        if abs(rounded - value) == step / 2:  # a tie
            assert rounded > value
