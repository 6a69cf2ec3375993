"""The pricing engine by example: the published worked examples of Stripe and Lago, the
semantics the issue fixed (free units, flat fees, min/max, zero usage), and the rounding rule
with JPY, USD and BHD."""

from decimal import Decimal

import pytest

from billing.pricing.engine import ChargeSpec, Tier, price_charge, validate_tiers
from billing.pricing.money import format_exact, format_money, round_money

D = Decimal

STRIPE_TIERED = "https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing"
# Stripe's Typographic tiers: fonts 1-5 at 7 USD, 6-10 at 6.50 USD, 11+ at 6 USD.
TYPOGRAPHIC_TIERS = (Tier(D(5), D(7)), Tier(D(10), D("6.5")), Tier(None, D(6)))


def per_unit(unit_amount, **bounds) -> ChargeSpec:
    return ChargeSpec(meter="requests", model="per_unit", unit_amount=D(unit_amount), **bounds)


def tiered(model: str, tiers, **extra) -> ChargeSpec:
    return ChargeSpec(meter="requests", model=model, tiers=tuple(tiers), **extra)


def package(size, amount, **extra) -> ChargeSpec:
    return ChargeSpec(
        meter="requests", model="package", package_size=D(size), package_amount=D(amount), **extra
    )


def amount(spec: ChargeSpec, quantity, currency="USD") -> str:
    return format_money(price_charge(spec, D(quantity), currency).amount, currency)


# --- Stripe: "Set up tiered pricing" ------------------------------------------------------
@pytest.mark.parametrize(
    ("fonts", "total"),
    [(1, "7.00"), (5, "35.00"), (6, "39.00"), (20, "120.00"), (25, "150.00")],
)
def test_stripe_volume_based_pricing_table(fonts, total):
    """Source: Stripe, "Set up tiered pricing", section "Volume-based pricing"
    (https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing#volume-based-pricing).
    The table "Quantity and usage at end of the period / Unit cost / Total monthly cost",
    every row: 1 -> 7 USD, 5 -> 35 USD, 6 -> 39 USD, 20 -> 120 USD, 25 -> 150 USD."""
    assert amount(tiered("volume", TYPOGRAPHIC_TIERS), fonts) == total


def test_stripe_volume_pricing_prices_every_unit_at_the_reached_tier():
    """Source: Stripe, "Set up tiered pricing" (volume-based): "a customer with 5 fonts is
    charged 35 USD (5 x 7 USD) in November. If they use 6 fonts in December, then
    Typographic bills all fonts at the 6-10 rate ... 39 USD (6 x 6.5 USD)"."""
    spec = tiered("volume", TYPOGRAPHIC_TIERS)
    november, december = price_charge(spec, D(5), "USD"), price_charge(spec, D(6), "USD")
    assert (november.amount, november.tiers[0].unit_amount) == (D("35.00"), D(7))
    assert (december.amount, december.tiers[0].unit_amount) == (D("39.00"), D("6.5"))
    assert december.tiers[0].quantity == D(6)  # all six fonts, not just the sixth


@pytest.mark.parametrize(
    ("fonts", "total", "per_tier"),
    [
        (1, "7.00", ["7"]),
        (5, "35.00", ["35"]),
        (6, "41.50", ["35", "6.5"]),
        (20, "127.50", ["35", "32.5", "60"]),
        (25, "157.50", ["35", "32.5", "90"]),
    ],
)
def test_stripe_graduated_pricing(fonts, total, per_tier):
    """Source: Stripe, "Set up tiered pricing", section "Graduated pricing"
    (https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing#graduated-pricing):
    "5 fonts result in the same charge as volume-based pricing: 35 USD total at 7 USD per
    font"; beyond the first tier "the quantity is multiplied by the amount for each tier and
    the totals for each tier are summed together". The 1- and 5-font rows are quoted; the
    6-, 20- and 25-font rows apply that rule to the quantities of the page's volume table
    (6 fonts: 5 x 7 + 1 x 6.50 = 41.50 USD)."""
    line = price_charge(tiered("graduated", TYPOGRAPHIC_TIERS), D(fonts), "USD")
    assert format_money(line.amount, "USD") == total
    assert [format_exact(tier.amount) for tier in line.tiers] == per_tier


def test_stripe_flat_amount_is_charged_once_for_the_whole_tier():
    """Source: Stripe API reference, "Create a price", parameter `tiers.flat_amount`
    (https://docs.stripe.com/api/prices/create): "The flat billing amount for an entire tier,
    regardless of the number of units in the tier". Typographic's tiers with a flat fee of
    10, 20 and 30 USD per tier (our example): in graduated mode each tier reached adds its
    flat amount once; in volume mode only the reached tier's flat amount is added."""
    tiers = (
        Tier(D(5), D(7), D(10)),
        Tier(D(10), D("6.5"), D(20)),
        Tier(None, D(6), D(30)),
    )
    # Graduated, 12 fonts: (5 x 7 + 10) + (5 x 6.50 + 20) + (2 x 6 + 30) = 139.50
    assert amount(tiered("graduated", tiers), 12) == "139.50"
    # Volume, 12 fonts: 12 x 6 + 30 = 102.00
    assert amount(tiered("volume", tiers), 12) == "102.00"
    # One font reaches only the first tier: 7 + 10 in both modes.
    assert amount(tiered("graduated", tiers), 1) == amount(tiered("volume", tiers), 1) == "17.00"


def test_stripe_fixed_fee_and_overage_is_a_free_first_tier():
    """Source: Stripe, "Set up a flat fee and overages pricing model"
    (https://docs.stripe.com/billing/subscriptions/usage-based-v1/use-cases/flat-fee-and-overages):
    Hypernian's usage rates are "0-1000: 0 USD, 1000+: 0.04 USD" on top of a 100 USD fee.
    As a graduated price with a zero first tier, or as 1,000 free units at 0.04 USD, the
    same overage results (our quantities: 1,500 tokens are 500 x 0.04 = 20 USD)."""
    graduated = tiered("graduated", (Tier(D(1000), D(0)), Tier(None, D("0.04"))))
    free_units = per_unit("0.04", free_units=D(1000))
    for tokens, overage in ((0, "0.00"), (1000, "0.00"), (1001, "0.04"), (1500, "20.00")):
        assert amount(graduated, tokens) == amount(free_units, tokens) == overage


# --- Lago: charge models -------------------------------------------------------------------
def test_lago_standard_charge_model():
    """Source: Lago, "Standard" charge model
    (https://getlago.com/docs/guide/plans/charges/charge-models/standard): "$0.05 per API
    call ... If a customer makes 1,000 API calls ... $0.05 x 1,000 API calls = $50"."""
    assert amount(per_unit("0.05"), 1000) == "50.00"


@pytest.mark.parametrize(
    ("calls", "total"),
    [(100, "100.00"), (101, "100.50"), (200, "150.00"), (250, "155.00")],
)
def test_lago_graduated_charge_model(calls, total):
    """Source: Lago, "Graduated" charge model
    (https://getlago.com/docs/guide/plans/charges/charge-models/graduated): "$1 per unit for
    the first 100 units ..., then $0.50 per unit for the next 100 calls and finally, $0.10
    for any additional unit". The page gives no totals; these follow from its tiers
    (250 calls: 100 x $1 + 100 x $0.50 + 50 x $0.10 = $155)."""
    tiers = (Tier(D(100), D(1)), Tier(D(200), D("0.5")), Tier(None, D("0.1")))
    assert amount(tiered("graduated", tiers), calls) == total


def test_lago_package_charge_model_with_free_units():
    """Source: Lago, "Package" charge model
    (https://getlago.com/docs/guide/plans/charges/charge-models/package): "charge $5 per
    100 units and offer the first 100 units. In this example, 201 units would cost $0
    (first 100 units) + $5 (next 100 units) + $5 (last unit) = $10"."""
    spec = package(100, 5, free_units=D(100))
    assert amount(spec, 201) == "10.00"
    assert amount(spec, 100) == "0.00"  # all free
    assert amount(spec, 200) == "5.00"  # exactly one full package


def test_lago_volume_charge_model_with_a_fixed_fee():
    """Source: Lago, "Volume" charge model
    (https://getlago.com/docs/guide/plans/charges/charge-models/volume): tiers 0-10,000 at
    $0.0010, 10,001-50,000 at $0.0008, 50,001-100,000 at $0.0006, 100,001+ at $0.0004, each
    with a $10 fixed fee: "65,000 API calls would cost 65,000 x $0.0006 + $10 = $49"."""
    tiers = (
        Tier(D(10_000), D("0.0010"), D(10)),
        Tier(D(50_000), D("0.0008"), D(10)),
        Tier(D(100_000), D("0.0006"), D(10)),
        Tier(None, D("0.0004"), D(10)),
    )
    line = price_charge(tiered("volume", tiers), D(65_000), "USD")
    assert format_money(line.amount, "USD") == "49.00"
    [reached] = line.tiers  # one tier, the one the total reached
    assert (reached.start, reached.up_to, reached.unit_amount) == (
        D(50_000),
        D(100_000),
        D("0.0006"),
    )


# --- Semantics the issue fixed --------------------------------------------------------------
ALL_MODELS_WITH_FLAT_FEES = [
    per_unit("0.5"),
    tiered("graduated", (Tier(D(10), D(1), D(5)), Tier(None, D("0.5"), D(7)))),
    tiered("volume", (Tier(D(10), D(1), D(5)), Tier(None, D("0.5"), D(7)))),
    package(100, "2.50"),
]


@pytest.mark.parametrize("spec", ALL_MODELS_WITH_FLAT_FEES, ids=lambda spec: spec.model)
def test_zero_usage_costs_nothing_in_every_model(spec):
    line = price_charge(spec, D(0), "USD")
    assert line.amount == D("0.00")
    assert line.tiers == []  # no tier reached, so no flat fee either


@pytest.mark.parametrize("spec", ALL_MODELS_WITH_FLAT_FEES, ids=lambda spec: spec.model)
def test_usage_within_the_free_allowance_costs_nothing(spec):
    with_free = ChargeSpec(**{**spec.__dict__, "free_units": D(1000)})
    assert price_charge(with_free, D(1000), "USD").amount == 0
    assert price_charge(with_free, D(1001), "USD").amount == price_charge(spec, D(1), "USD").amount


def test_free_allowance_is_subtracted_before_any_tier():
    # 10 free, then 5 units at 1 and the rest at 0.5: 25 units = 15 billable = 5 + 10 x 0.5.
    spec = tiered("graduated", (Tier(D(5), D(1)), Tier(None, D("0.5"))), free_units=D(10))
    line = price_charge(spec, D(25), "USD")
    assert line.billable_quantity == D(15)
    assert [(tier.start, tier.quantity) for tier in line.tiers] == [(D(0), D(5)), (D(5), D(10))]
    assert line.amount == D("10.00")


def test_a_tier_bound_belongs_to_the_lower_tier():
    # up_to is inclusive (as in Stripe): 5 units are all in the first tier, 5.5 are not.
    volume = tiered("volume", TYPOGRAPHIC_TIERS)
    assert price_charge(volume, D(5), "USD").tiers[0].unit_amount == D(7)
    assert price_charge(volume, D("5.5"), "USD").tiers[0].unit_amount == D("6.5")
    graduated = price_charge(tiered("graduated", TYPOGRAPHIC_TIERS), D("5.5"), "USD")
    assert [tier.quantity for tier in graduated.tiers] == [D(5), D("0.5")]


@pytest.mark.parametrize(
    ("quantity", "expected", "adjusted_by"),
    [
        (0, "5.00", "minimum"),  # the minimum applies even with no usage
        (4, "5.00", "minimum"),  # 4.00 < 5.00
        (5, "5.00", None),  # exactly the minimum: not adjusted
        (6, "6.00", None),
        (20, "20.00", None),  # exactly the maximum
        (21, "20.00", "maximum"),
        (1000, "20.00", "maximum"),
    ],
)
def test_minimum_and_maximum_bound_the_line_at_their_boundaries(quantity, expected, adjusted_by):
    line = price_charge(per_unit(1, minimum=D(5), maximum=D(20)), D(quantity), "USD")
    assert (format_money(line.amount, "USD"), line.adjusted_by) == (expected, adjusted_by)


def test_minimum_and_maximum_bound_the_exact_amount_then_the_line_is_rounded():
    # 3 x 1.6665 = 4.9995 is below the 5.00 minimum even though it would round to 5.00.
    line = price_charge(per_unit("1.6665", minimum=D(5)), D(3), "USD")
    assert (line.exact_amount, line.amount, line.adjusted_by) == (
        D("4.9995"),
        D("5.00"),
        "minimum",
    )


@pytest.mark.parametrize(
    ("quantity", "blocks"),
    [(1, 1), (999, 1), (1000, 1), (1001, 2), ("1000.000000000001", 2), (2500, 3)],
)
def test_package_pricing_charges_each_started_block(quantity, blocks):
    line = price_charge(package(1000, "2.50"), D(quantity), "USD")
    assert line.amount == D("2.50") * blocks


def test_a_negative_quantity_is_refused():
    with pytest.raises(ValueError):
        price_charge(per_unit(1), D(-1), "USD")


@pytest.mark.parametrize(
    ("tiers", "problem"),
    [
        ((), "Give at least one tier."),
        ((Tier(None, D(1)), Tier(None, D(1))), "Only the last tier"),
        ((Tier(D(10), D(1)), Tier(D(10), D(1)), Tier(None, D(1))), "must increase"),
        ((Tier(D(10), D(1)), Tier(D(5), D(1)), Tier(None, D(1))), "must increase"),
        ((Tier(D(10), D(1)),), "The last tier must have no upper bound"),
        ((Tier(D(0), D(1)), Tier(None, D(1))), "must increase"),
        ((Tier(None, D(-1)),), "must not be negative"),
        ((Tier(None, D(1), D(-1)),), "must not be negative"),
    ],
)
def test_unusable_tiers_are_explained(tiers, problem):
    assert problem in validate_tiers(tiers)


def test_usable_tiers_pass():
    assert validate_tiers(TYPOGRAPHIC_TIERS) is None


# --- Rounding: HALF_UP to the currency's minor unit, once per line ---------------------------
@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        ("85.5", "USD", "85.50"),
        ("0.125", "USD", "0.13"),  # half: up
        ("0.124999", "USD", "0.12"),
        ("-0.125", "USD", "-0.13"),  # half: away from zero
        ("-0.001", "USD", "0.00"),  # a zero has no sign
        ("0", "USD", "0.00"),
        ("1E+3", "USD", "1000.00"),  # never an exponent
        ("2", "JPY", "2"),
        ("2.5", "JPY", "3"),
        ("2.4999", "JPY", "2"),
        ("0.4", "JPY", "0"),
        ("1.2345", "BHD", "1.235"),
        ("1.2344", "BHD", "1.234"),
        ("7", "BHD", "7.000"),
        ("0.0005", "BHD", "0.001"),
    ],
)
def test_amounts_are_rounded_half_up_and_shown_with_the_currency_digits(value, currency, shown):
    assert format_money(D(value), currency) == shown


def test_a_line_is_rounded_once_not_per_unit():
    # 3 units at 0.333: 0.999 -> 1.00 (rounding each unit first would give 0.99).
    assert amount(per_unit("0.333"), 3) == "1.00"


def test_a_line_is_rounded_once_not_per_tier():
    # Two tiers of 0.005 each: 0.010 -> 0.01 (rounding each tier would give 0.02).
    spec = tiered("graduated", (Tier(D(1), D("0.005")), Tier(None, D("0.005"))))
    line = price_charge(spec, D(2), "USD")
    assert [tier.amount for tier in line.tiers] == [D("0.005"), D("0.005")]  # exact
    assert line.amount == D("0.01")


def test_jpy_lines_are_whole_yen_and_bhd_lines_have_three_decimals():
    spec = per_unit("0.45")
    assert amount(spec, 5, "JPY") == "2"  # 2.25 yen
    assert amount(spec, 7, "JPY") == "3"  # 3.15 yen
    assert amount(spec, 5, "BHD") == "2.250"
    assert amount(per_unit("0.0001"), 5, "BHD") == "0.001"  # 0.0005 -> 0.001


def test_amounts_are_exact_beyond_the_default_28_digits_before_the_one_rounding():
    # 12345678004999999999.999999999999 units at 0.000000000001 is exactly
    # 12345678.004999999999999999999999 (32 digits): 12345678.00. Computed in Python's
    # default 28-digit context it would become 12345678.005 first, and round to .01.
    quantity = D("12345678004999999999.999999999999")
    line = price_charge(per_unit("0.000000000001"), quantity, "USD")
    assert line.exact_amount == D("12345678.004999999999999999999999")
    assert line.amount == D("12345678.00")


def test_round_money_keeps_the_currency_quantum():
    assert round_money(D("2"), "USD").as_tuple().exponent == -2
    assert round_money(D("2.5"), "JPY").as_tuple().exponent == 0
    assert round_money(D("2"), "BHD").as_tuple().exponent == -3
