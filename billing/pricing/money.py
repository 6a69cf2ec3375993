"""Money: Decimal amounts, each currency's minor unit, and the one rounding rule.

Rule: amounts are exact Decimals while they are computed; a line's total is rounded once,
HALF_UP, to the currency's minor unit (USD cents, JPY yen) and shown with exactly that many
digits. docs/pricing.md has worked examples.
"""

from decimal import ROUND_HALF_UP, Decimal, localcontext

# ISO 4217 minor units of the currencies Tollgate accepts.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "BRL": 2,
    "MXN": 2,
    "INR": 2,
    "SGD": 2,
    "HKD": 2,
    "CNY": 2,
    "ZAR": 2,
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
}
ZERO = Decimal(0)
# Enough significant digits that no product of a price (30 digits) and a quantity (38 digits)
# is rounded on the way: the one rounding a line gets is round_money's.
EXACT_DIGITS = 80


def is_supported_currency(currency: str) -> bool:
    return currency in MINOR_UNITS


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def exact_context():
    """A decimal context for computing amounts exactly (default contexts keep 28 digits)."""
    return localcontext(prec=EXACT_DIGITS)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """HALF_UP to the minor unit: 0.125 USD -> 0.13, 2.5 JPY -> 3, -0.125 USD -> -0.13."""
    with exact_context():
        rounded = amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)
    # -0.001 rounds to -0.00: a zero has no sign on an invoice.
    return abs(rounded) if rounded == 0 else rounded


def format_money(amount: Decimal, currency: str) -> str:
    """Exactly the minor unit's digits: "85.50" (USD), "2" (JPY), never "-0.00"."""
    return str(round_money(amount, currency))


def format_exact(value: Decimal) -> str:
    """An unrounded amount or quantity, without exponent or trailing zeros: "0.00042"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
