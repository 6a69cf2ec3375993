"""Portal pages for alerts (thresholds, firings, anomalies) and bill simulation, under
/o/<slug>/billing/. Views parse, check the role, call one service in billing.alerts or
billing.simulations, and render."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import alerts
from billing import subscriptions as subs
from billing.anomalies import anomaly_list
from billing.models import QUANTITY_DECIMALS, QUANTITY_DIGITS, AlertThreshold, Meter
from billing.simulations import DEFAULT_PERIODS, MAX_PERIODS, simulate
from common.errors import TollgateError
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.forms import add_service_error
from portal.roles import Permission, role_allows

RECENT = 50


class ThresholdForm(forms.Form):
    kind = forms.ChoiceField(
        label="Alert on",
        choices=[("usage", "Usage of a meter"), ("spend", "This period's bill")],
    )
    meter = forms.ChoiceField(label="Meter", required=False, help_text="For usage alerts.")
    value = forms.DecimalField(
        label="Threshold",
        min_value=0,
        max_digits=QUANTITY_DIGITS,
        decimal_places=QUANTITY_DECIMALS,
        help_text="Units of the meter, or an amount in your plan's currency.",
        widget=forms.NumberInput(attrs={"min": "0", "step": "any", "inputmode": "decimal"}),
    )

    def __init__(self, *args, meters: list[Meter], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meter"].choices = [("", "—")] + [(m.code, m.name) for m in meters]


class SimulationForm(forms.Form):
    plan = forms.ChoiceField(label="Plan")
    periods = forms.IntegerField(
        label="Periods", min_value=1, max_value=MAX_PERIODS, initial=DEFAULT_PERIODS
    )

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(plan.code, plan.name) for plan in plans]


def _alerts_url(request: HttpRequest) -> str:
    return reverse("org_billing:alerts", kwargs={"slug": request.organization.slug})


def _render_alerts(request: HttpRequest, *, form: ThresholdForm | None = None) -> HttpResponse:
    organization = request.organization
    meters = list(Meter.objects.all())
    subscription = subs.subscription_current(organization=organization)
    context = {
        "currency": alerts.bill_currency(subscription, timezone.now()),
        "nav_section": "billing",
        "thresholds": alerts.alert_threshold_list(organization=organization),
        "firings": alerts.alert_firing_list(organization=organization)[:RECENT],
        "anomalies": anomaly_list(organization=organization, limit=RECENT),
        "form": form or ThresholdForm(prefix="threshold", meters=meters),
        "can_manage": role_allows(request.membership.role, Permission.BILLING_MANAGE),
    }
    return render(request, "billing/alerts.html", context)


@org_member_required(Permission.ORG_VIEW)
def alerts_page(request: HttpRequest) -> HttpResponse:
    return _render_alerts(request)


@org_member_required(Permission.BILLING_MANAGE)
@require_POST
def threshold_add(request: HttpRequest) -> HttpResponse:
    form = ThresholdForm(request.POST, prefix="threshold", meters=list(Meter.objects.all()))
    if form.is_valid():
        data = form.cleaned_data
        try:
            alerts.alert_threshold_create(
                actor=Actor.from_request(request),
                organization=request.organization,
                kind=data["kind"],
                value=data["value"],
                meter_code=data["meter"] if data["kind"] == AlertThreshold.Kind.USAGE else None,
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                form.add_error(None, error.detail)
        else:
            messages.success(request, "Alert threshold added.")
            return redirect(_alerts_url(request))
    return _render_alerts(request, form=form)


@org_member_required(Permission.BILLING_MANAGE)
@require_POST
def threshold_delete(request: HttpRequest, threshold_id: str) -> HttpResponse:
    threshold = alerts.alert_threshold_get(
        organization=request.organization, threshold_id=threshold_id
    )  # another org's id: NotFound, which the decorator turns into 404
    try:
        alerts.alert_threshold_delete(actor=Actor.from_request(request), threshold=threshold)
    except TollgateError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, "Alert threshold removed.")
    return redirect(_alerts_url(request))


@org_member_required(Permission.ORG_VIEW)
def simulate_page(request: HttpRequest) -> HttpResponse:
    """GET with ?plan=&periods= runs the simulation; nothing is saved."""
    plans = [plan for plan in subs.public_plans() if plan.current_version() is not None]
    form = SimulationForm(
        request.GET if "plan" in request.GET else None,
        plans=plans,
        initial={"periods": DEFAULT_PERIODS},
    )
    simulation = None
    if form.is_bound and form.is_valid():
        try:
            simulation = simulate(
                organization=request.organization,
                plan=subs.plan_get(code=form.cleaned_data["plan"]),
                periods=form.cleaned_data["periods"],
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                form.add_error(None, error.detail)
    return render(
        request,
        "billing/simulate.html",
        {"nav_section": "billing", "form": form, "simulation": simulation},
    )
