"""Template helpers for money and quantities, and the upgrade prompts any org page can show.

Portal templates load this library to show billing's prompts without the portal's Python
code importing billing. static/js/pricing.js formats amounts the same way (keep in step).
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from billing.pricing.money import MINOR_UNITS, round_money
from billing.upgrades import upgrade_prompts

register = template.Library()

# Shown before the amount; other currencies get their code after it ("12.50 CHF").
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None


def format_amount(value, currency: str, *, exact: bool = False, short: bool = False) -> str:
    """ "$1,234.50"; `exact` keeps every significant decimal ("$0.0004"), `short` drops
    zero cents ("$49"). Rounding is money.round_money's, so figures match invoices."""
    amount = _decimal(value)
    if amount is None:
        return ""
    digits = MINOR_UNITS.get(currency, 2)
    if exact:
        exponent = amount.normalize().as_tuple().exponent
        places = max(digits, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    else:
        amount = round_money(amount, currency) if currency in MINOR_UNITS else amount
        places = 0 if short and amount == amount.to_integral_value() else digits
    text = f"{abs(amount):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def format_quantity(value) -> str:
    """ "2,500,000", "0.25": grouped, without trailing zeros or exponent."""
    number = _decimal(value)
    if number is None:
        return ""
    text = f"{number.normalize():,f}"
    return "0" if text in ("-0", "") else text


def approximate_quantity(value) -> str:
    """A forecast: whole units from 100 up, else two decimals ("12,599,999", "0.42")."""
    number = _decimal(value)
    if number is None:
        return ""
    step = Decimal(1) if abs(number) >= 100 else Decimal("0.01")
    return format_quantity(number.quantize(step, rounding=ROUND_HALF_UP))


@register.filter
def money(value, currency: str = "USD") -> str:
    return format_amount(value, currency)


@register.filter
def money_short(value, currency: str = "USD") -> str:
    return format_amount(value, currency, short=True)


@register.filter
def money_exact(value, currency: str = "USD") -> str:
    return format_amount(value, currency, exact=True)


@register.filter
def money_signed(value, currency: str = "USD") -> str:
    """A difference: "+$450.00" / "-$49.00"."""
    amount = _decimal(value)
    if amount is None:
        return ""
    return ("+" if amount >= 0 else "") + format_amount(amount, currency)


@register.filter
def quantity(value) -> str:
    return format_quantity(value)


@register.filter
def quantity_approx(value) -> str:
    return approximate_quantity(value)


@register.inclusion_tag("billing/includes/quota_prompts.html", takes_context=True)
def quota_prompts(context) -> dict:
    """Quotas at 80% and 100% this period, with the plan that raises them."""
    organization = context.get("current_org")
    if organization is None:
        return {"prompts": []}
    return {
        "prompts": upgrade_prompts(organization),
        "current_org": organization,
        "can_manage": bool((context.get("org_can") or {}).get("billing_manage")),
    }
