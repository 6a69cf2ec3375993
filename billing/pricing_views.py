"""Pricing pages: the public /pricing page with its calculator, and an organization's billing
page (plan, bill preview, plan changes, cancellation, add-ons, estimates).

Views parse input, check the role, call one service in billing.subscriptions, and render.
Every figure comes from billing.quotes (directly or through the subscription services), the
code that prices invoices; the calculator's live updates call `POST /api/v1/pricing/quote`,
which builds its quote the same way as this page does without JavaScript.
"""

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_POST

from billing import entitlements
from billing import subscriptions as subs
from billing.models import (
    QUANTITY_DECIMALS,
    QUANTITY_DIGITS,
    AddOn,
    Meter,
    Plan,
    PlanVersion,
    Subscription,
)
from billing.pricing.money import MINOR_UNITS, ZERO
from billing.pricing_api import plan_json
from billing.quotes import Quote, Segment, build_quote, quote_as_json
from billing.templatetags.billing_tags import (
    CURRENCY_SYMBOLS,
    approximate_quantity,
    format_amount,
    format_quantity,
)
from billing.upgrades import PROMPTED_FEATURES, feature_prompts
from common.errors import TollgateError
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.forms import add_service_error
from portal.roles import Permission

TIMES = "\N{MULTIPLICATION SIGN}"
WINDOWS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
# The ledger's own bounds, so a figure the form takes is one usage could reach.
QUANTITY_FIELD = {
    "min_value": 0,
    "max_digits": QUANTITY_DIGITS,
    "decimal_places": QUANTITY_DECIMALS,
}


# --- Forms --------------------------------------------------------------------------------
class CalculatorForm(forms.Form):
    """The calculator without JavaScript: `/pricing?plan=pro&requests=2000000`."""

    plan = forms.ChoiceField(label="Plan")

    def __init__(self, *args, plans: list[Plan], meters: list[Meter], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]
        self.fields["plan"].widget.attrs["id"] = "calculator-plan"
        for meter in meters:
            self.fields[meter.code] = forms.DecimalField(
                label=meter.name,
                required=False,
                help_text=f"per month, in {meter.unit}s",
                widget=forms.NumberInput(
                    attrs={"min": "0", "step": "any", "inputmode": "decimal", "placeholder": "0"}
                ),
                **QUANTITY_FIELD,
            )


class SubscribeForm(forms.Form):
    coupon = forms.CharField(
        label="Coupon code", required=False, max_length=64, help_text="If you have one."
    )


class AddOnForm(forms.Form):
    addon = forms.ChoiceField(label="Add-on")
    quantity = forms.IntegerField(label="Quantity", min_value=1, max_value=1000, initial=1)

    def __init__(self, *args, addons, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["addon"].choices = [
            (addon.code, f"{addon.name} ({format_amount(addon.price, currency)} per period)")
            for addon in addons
        ]


class SpendCapForm(forms.Form):
    amount = forms.DecimalField(
        label="Spend cap per period",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=18,
        decimal_places=2,
        help_text="Past this, live calls are refused (spend_cap_reached). Empty: no cap.",
    )


class EstimateForm(forms.Form):
    meter = forms.ChoiceField(label="Meter")
    quantity = forms.DecimalField(
        label="How many more units",
        widget=forms.NumberInput(attrs={"min": "0", "step": "any", "inputmode": "decimal"}),
        **QUANTITY_FIELD,
    )

    def __init__(self, *args, meters: list[Meter], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meter"].choices = [(meter.code, meter.name) for meter in meters]


# --- Presentation helpers ------------------------------------------------------------------
def _plural(unit: str, count: Decimal) -> str:
    return unit if count == 1 or unit.endswith("s") else f"{unit}s"


def _rate_limit_text(limit: dict) -> str:
    window = limit["window_seconds"]
    per = WINDOWS.get(window, f"{window} seconds")
    scope = {"key": "per key", "project": "per project", "org": "per organization"}
    text = f"{format_quantity(limit['limit'])} requests / {per}"
    return f"{text} {scope.get(limit.get('scope', 'key'), '')}".strip()


def _charge_lines(charge: dict, meter: Meter, currency: str) -> list[str]:
    """A charge in words: "First 10,000 free", "Next 1,000,000: $0.0004 each", ..."""

    def price(amount) -> str:
        return format_amount(amount, currency, exact=True)

    def flat(tier: dict) -> str:
        value = Decimal(tier.get("flat_amount") or 0)
        return f" + {price(value)} flat" if value else ""

    free = Decimal(charge["free_units"])
    lines = [f"First {format_quantity(free)} free"] if free else []
    model = charge["model"]
    if model == "per_unit":
        lines.append(f"{price(charge['unit_amount'])} per {meter.unit}")
    elif model == "package":
        size = Decimal(charge["package_size"])
        lines.append(
            f"{price(charge['package_amount'])} per {format_quantity(size)} "
            f"{_plural(meter.unit, size)}"
        )
    elif model == "graduated":
        previous = ZERO
        for tier in charge["tiers"]:
            each = f"{price(tier['unit_amount'])} each{flat(tier)}"
            if tier["up_to"] is None:
                lines.append(f"{'Beyond' if previous or free else 'All'}: {each}")
            else:
                up_to = Decimal(tier["up_to"])
                word = "Next" if previous or free else "First"
                lines.append(f"{word} {format_quantity(up_to - previous)}: {each}")
                previous = up_to
    elif model == "volume":
        lines.append("Every unit at the rate of the band the total reaches:")
        previous = ZERO
        for tier in charge["tiers"]:
            each = f"{price(tier['unit_amount'])} each{flat(tier)}"
            if tier["up_to"] is None:
                lines.append(f"Over {format_quantity(previous)}: {each}")
            else:
                lines.append(f"Up to {format_quantity(tier['up_to'])}: {each}")
                previous = Decimal(tier["up_to"])
    if charge.get("maximum") is not None:
        lines.append(f"At most {format_amount(charge['maximum'], currency)} per period")
    if charge.get("minimum") is not None and Decimal(charge["minimum"]):
        lines.append(f"At least {format_amount(charge['minimum'], currency)} per period")
    return lines


def _plan_card(plan: Plan, meters: dict[str, Meter]) -> dict:
    """What the pricing page and the plan picker show of a plan (from the API's plan_json)."""
    body = plan_json(plan)
    granted = body["entitlements"]
    features = granted.get("features", {})
    support = str(granted.get("support_level") or "community")
    return {
        "plan": plan,
        "code": plan.code,
        "name": plan.name,
        "version": body["version"],
        "description": plan.description,
        "currency": plan.currency,
        "interval": plan.interval,
        "trial_days": plan.trial_days,
        "base_fee": Decimal(body["base_fee"]),
        "minimum_commitment": body["minimum_commitment"],
        "rate_limits": [_rate_limit_text(limit) for limit in granted.get("rate_limits", [])],
        "quotas": [
            {
                "meter": meters[quota["meter"]].name
                if quota["meter"] in meters
                else quota["meter"],
                "limit": Decimal(quota["limit"]),
                "behaviour": quota.get("behaviour", "hard"),
            }
            for quota in granted.get("quotas", [])
        ],
        "features": [
            {"label": label, "included": bool(features.get(code))}
            for code, label in PROMPTED_FEATURES.items()
        ],
        "support": support.replace("-", " ").capitalize() + " support",
        "retention_days": granted.get("retention_days"),
        "charges": [
            {
                "meter": meters[charge["meter"]],
                "lines": _charge_lines(charge, meters[charge["meter"]], plan.currency),
                "free_units": charge["free_units"],
            }
            for charge in body["charges"]
            if charge["meter"] in meters
        ],
    }


def _tier_label(tier: dict, unit_amount_text: str) -> str:
    """ "Up to 1,000,000: 990,000 x $0.0004" (bounds count billable units, after free ones)."""
    start, up_to = Decimal(tier["from"]), tier["up_to"]
    if up_to is not None:
        band = f"{format_quantity(start)} to {format_quantity(up_to)}"
        if not start:
            band = f"Up to {format_quantity(up_to)}"
    else:
        band = f"Above {format_quantity(start)}" if start else ""
    if Decimal(tier["unit_amount"]):
        detail = f"{format_quantity(tier['quantity'])} {TIMES} {unit_amount_text}"
    else:
        detail = f"{format_quantity(tier['quantity'])} billable"
    if Decimal(tier["flat_amount"]):
        detail += " + flat fee"
    return f"{band}: {detail}" if band else detail


def quote_rows(quote: dict, free_units: dict[str, str]) -> list[dict]:
    """Lines of an API-shaped quote (quote_as_json) with their tier breakdown, for templates.

    static/js/pricing.js builds the same rows from the same JSON when it updates live.
    """
    currency = quote["currency"]
    rows = []
    for line in quote["lines"]:
        details = []
        if line.get("billable_quantity") is not None:
            free = min(Decimal(line["quantity"]), Decimal(free_units.get(line["meter"], "0")))
            if free:
                details.append({"label": f"Free allowance: {format_quantity(free)}", "amount": ""})
            for tier in line["tiers"]:
                details.append(
                    {
                        "label": _tier_label(
                            tier, format_amount(tier["unit_amount"], currency, exact=True)
                        ),
                        "amount": format_amount(tier["amount"], currency, exact=True),
                    }
                )
            if line.get("adjusted_by"):
                details.append(
                    {
                        "label": f"The charge's {line['adjusted_by']} applies",
                        "amount": format_amount(line["amount"], currency),
                    }
                )
        rows.append(
            {
                "kind": line["kind"],
                "description": line["description"],
                "quantity": format_quantity(line["quantity"]) if line.get("meter") else "",
                "amount": format_amount(line["amount"], currency),
                "details": details,
            }
        )
    return rows


def _preview_rows(to_date: Quote, forecast: Quote) -> list[dict]:
    """The to-date and forecast quotes side by side, one row per line (forecast order)."""
    rows: dict[tuple, dict] = {}
    for column, quote in (("forecast", forecast), ("to_date", to_date)):
        for line in quote.lines:
            row = rows.setdefault(
                (line.kind, line.description),
                {
                    "description": line.description,
                    "kind": line.kind,
                    "to_date": None,
                    "forecast": None,
                },
            )
            row[column] = line
    return list(rows.values())


def _feature_groups(organization) -> list[dict]:
    """Missing features grouped by the plan that brings them ("Pro adds webhooks, ...")."""
    groups: dict[str, dict] = {}
    for prompt in feature_prompts(organization):
        group = groups.setdefault(prompt.offer.plan.code, {"offer": prompt.offer, "prompts": []})
        group["prompts"].append(prompt)
    return sorted(groups.values(), key=lambda group: group["offer"].version.base_fee)


def _current_version(subscription: Subscription | None, now) -> PlanVersion | None:
    """The plan version in force; the Free plan's without a subscription."""
    if subscription is None:
        free = Plan.objects.filter(code=entitlements.FREE_PLAN_CODE).first()
        return free.current_version() if free else None
    # As the API's subscription_json: a period not yet closed still shows its last phase.
    moment = max(subscription.current_period_start, min(subscription.current_period_end, now))
    phase = subs.phase_at(subscription, moment)
    return phase.plan_version if phase else None


def _day(moment) -> str:
    return date_format(timezone.localtime(moment), "j M Y")


def _overview_url(request: HttpRequest) -> str:
    return reverse("org_billing:overview", kwargs={"slug": request.organization.slug})


# --- Public pricing page -------------------------------------------------------------------
def pricing(request: HttpRequest) -> HttpResponse:
    plans = list(subs.public_plans())
    meters = {meter.code: meter for meter in Meter.objects.all()}
    cards = [_plan_card(plan, meters) for plan in plans]
    # Every meter some plan charges, in the order the plans list them.
    charged = list(
        {
            charge["meter"].code: charge["meter"] for card in cards for charge in card["charges"]
        }.values()
    )
    default = next((card["code"] for card in cards if card["charges"]), None)
    initial = {"plan": default or (cards[0]["code"] if cards else "")}
    data = request.GET if "plan" in request.GET else None
    form = CalculatorForm(data, initial=initial, plans=plans, meters=charged)
    selected_code = initial["plan"]
    usage: dict[str, Decimal] = {}
    if form.is_bound and form.is_valid():
        selected_code = form.cleaned_data["plan"]
        usage = {
            code: form.cleaned_data[code]
            for code in (meter.code for meter in charged)
            if form.cleaned_data.get(code) is not None
        }
    elif form.is_bound and form["plan"].value() in [card["code"] for card in cards]:
        selected_code = form["plan"].value()
    selected = next((card for card in cards if card["code"] == selected_code), None)
    quote, rows = None, []
    if selected is not None and not form.errors:
        # The quote API's own steps: one whole-period segment of the plan's current version.
        built = build_quote(
            segments=[Segment(version=selected["plan"].current_version(), usage=usage)]
        )
        quote = quote_as_json(built)
        free_units = {charge["meter"].code: charge["free_units"] for charge in selected["charges"]}
        rows = quote_rows(quote, free_units)
    context = {
        "cards": cards,
        "form": form,
        "meter_fields": [form[meter.code] for meter in charged],
        "selected": selected,
        "quote": quote,
        "quote_rows": rows,
        "calculator": _calculator_data(cards),
    }
    return render(request, "pricing/pricing.html", context)


def _calculator_data(cards: list[dict]) -> dict:
    """What static/js/pricing.js needs: where to ask, how to format, each plan's meters."""
    return {
        "quote_url": reverse("api:pricing-quote"),
        "symbols": CURRENCY_SYMBOLS,
        "minor_units": MINOR_UNITS,
        "plans": {
            card["code"]: {
                "name": card["name"],
                "currency": card["currency"],
                "interval": card["interval"],
                "meters": [charge["meter"].code for charge in card["charges"]],
                "free_units": {
                    charge["meter"].code: charge["free_units"] for charge in card["charges"]
                },
            }
            for card in cards
        },
    }


# --- An organization's billing page --------------------------------------------------------
def _render_overview(
    request: HttpRequest,
    *,
    addon_form: AddOnForm | None = None,
    spend_cap_form: SpendCapForm | None = None,
) -> HttpResponse:
    organization = request.organization
    now = timezone.now()
    subscription = subs.subscription_current(organization=organization)
    version = _current_version(subscription, now)
    meters = {meter.code: meter for meter in Meter.objects.all()}
    context = {
        "nav_section": "billing",
        "subscription": subscription,
        "version": version,
        "plans": [
            _plan_card(plan, meters)
            for plan in subs.public_plans()
            if plan.current_version() is not None
        ],
        "feature_groups": _feature_groups(organization),
    }
    if subscription is not None:
        preview = subs.subscription_preview(subscription=subscription, now=now)
        currency = preview.forecast.currency
        charged = []
        if version is not None:
            charged = [charge.meter for charge in version.charges.select_related("meter")]
        estimate_form = EstimateForm(
            request.GET if "estimate-meter" in request.GET else None,
            prefix="estimate",
            meters=charged or list(meters.values()),
        )
        estimate = None
        if estimate_form.is_bound and estimate_form.is_valid():
            try:
                estimate = subs.subscription_estimate(
                    subscription=subscription,
                    meter=meters[estimate_form.cleaned_data["meter"]],
                    quantity=estimate_form.cleaned_data["quantity"],
                    now=now,
                )
            except TollgateError as error:
                if not add_service_error(estimate_form, error):
                    estimate_form.add_error(None, error.detail)
        addons = list(AddOn.objects.filter(public=True, currency=currency).order_by("price"))
        context |= {
            "preview": preview,
            "preview_rows": _preview_rows(preview.to_date, preview.forecast),
            "currency": currency,
            "migration": subs.scheduled_migration(subscription, now),
            "addons": subscription.addons.filter(removed_at__isnull=True).select_related("addon"),
            "addon_form": addon_form or AddOnForm(prefix="addon", addons=addons, currency=currency),
            "estimate_form": estimate_form,
            "estimate": estimate,
            "spend_cap_form": spend_cap_form
            or SpendCapForm(prefix="cap", initial={"amount": subscription.spend_cap}),
        }
    return render(request, "billing/billing.html", context)


@org_member_required(Permission.ORG_VIEW)
def overview(request: HttpRequest) -> HttpResponse:
    return _render_overview(request)


@org_member_required(Permission.BILLING_MANAGE)
def plan_change(request: HttpRequest, code: str) -> HttpResponse:
    """GET shows what the change costs this period (nothing saved); POST makes it."""
    organization = request.organization
    plan = subs.plan_get(code=code)  # NotFound (private or unknown plan): 404
    subscription = subs.subscription_current(organization=organization)
    form = None
    if subscription is None:
        form = SubscribeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and (form is None or form.is_valid()):
        try:
            changed = subs.subscription_subscribe(
                actor=Actor.from_request(request),
                organization=organization,
                plan=plan,
                coupon_code=(form.cleaned_data["coupon"] or None) if form else None,
            )
        except TollgateError as error:
            if form is None or not add_service_error(form, error):
                messages.error(request, error.detail)
                return redirect(_overview_url(request))
        else:
            if subscription is None and changed.trial_ends_at:
                messages.success(
                    request,
                    f"You are on {plan.name}; the trial runs until {_day(changed.trial_ends_at)}.",
                )
            else:
                messages.success(request, f"You are on {plan.name} now.")
            return redirect(_overview_url(request))
    context = {"nav_section": "billing", "plan": plan, "form": form, "subscription": subscription}
    try:
        if subscription is not None:
            before, after = subs.subscription_preview_change(subscription=subscription, plan=plan)
            context |= {
                "before": before,
                "after": after,
                "before_rows": _lines(before),
                "after_rows": _lines(after),
                "difference": after.total - before.total,
            }
        else:
            # A new subscription: its fixed price, with the usage prices listed beside it.
            after = build_quote(segments=[Segment(version=plan.current_version(), usage={})])
            meters = {meter.code: meter for meter in Meter.objects.all()}
            context |= {
                "after": after,
                "after_rows": [line for line in _lines(after) if not line["quantity"]],
                "card": _plan_card(plan, meters),
            }
    except TollgateError as error:
        messages.error(request, error.detail)
        return redirect(_overview_url(request))
    return render(request, "billing/plan_change.html", context)


def _lines(quote: Quote) -> list[dict]:
    """Quote lines for the confirmation page; usage in the meter's unit, forecasts rounded."""
    units = dict(Meter.objects.values_list("code", "unit"))
    return [
        {
            "description": line.description,
            "quantity": f"{approximate_quantity(line.quantity)} "
            f"{_plural(units.get(line.meter, 'unit'), line.quantity)}"
            if line.meter
            else "",
            "amount": line.amount,
        }
        for line in quote.lines
    ]


@org_member_required(Permission.BILLING_MANAGE)
def cancel(request: HttpRequest) -> HttpResponse:
    """GET is the confirmation page; the POST cancels at the end of the current period."""
    subscription = subs.subscription_current(organization=request.organization)
    if subscription is None:
        messages.info(request, "You are on the Free plan: there is nothing to cancel.")
        return redirect(_overview_url(request))
    if request.method == "POST":
        subs.subscription_cancel(actor=Actor.from_request(request), subscription=subscription)
        messages.success(
            request,
            f"Your subscription ends on {_day(subscription.current_period_end)}; "
            "the Free plan applies from then.",
        )
        return redirect(_overview_url(request))
    return render(
        request, "billing/cancel.html", {"nav_section": "billing", "subscription": subscription}
    )


@org_member_required(Permission.BILLING_MANAGE)
@require_POST
def addon_add(request: HttpRequest) -> HttpResponse:
    subscription = subs.subscription_current(organization=request.organization)
    if subscription is None:
        messages.error(request, "Subscribe to a plan before adding add-ons.")
        return redirect(_overview_url(request))
    version = _current_version(subscription, timezone.now())
    currency = version.plan.currency if version else "USD"
    addons = list(AddOn.objects.filter(public=True, currency=currency).order_by("price"))
    form = AddOnForm(request.POST, prefix="addon", addons=addons, currency=currency)
    if form.is_valid():
        addon = next(a for a in addons if a.code == form.cleaned_data["addon"])
        try:
            subs.subscription_add_addon(
                actor=Actor.from_request(request),
                subscription=subscription,
                addon=addon,
                quantity=form.cleaned_data["quantity"],
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            messages.success(request, f"{addon.name} is added from now on.")
            return redirect(_overview_url(request))
    return _render_overview(request, addon_form=form)


@org_member_required(Permission.BILLING_MANAGE)
@require_POST
def spend_cap_set(request: HttpRequest) -> HttpResponse:
    subscription = subs.subscription_current(organization=request.organization)
    if subscription is None:
        messages.error(request, "Subscribe to a plan before setting a spend cap.")
        return redirect(_overview_url(request))
    form = SpendCapForm(request.POST, prefix="cap")
    if form.is_valid():
        amount = form.cleaned_data["amount"]
        try:
            subs.subscription_set_spend_cap(
                actor=Actor.from_request(request), subscription=subscription, amount=amount
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            messages.success(
                request, "Spend cap removed." if amount is None else f"Spend cap set to {amount}."
            )
            return redirect(_overview_url(request))
    return _render_overview(request, spend_cap_form=form)
