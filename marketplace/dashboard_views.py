"""The partner dashboard pages: all apps, or one app, of the organization's partner record.

Owners, admins and billing members (BILLING_MANAGE) see it: it is the partner's money and
its customers' aggregated usage, not something developers or viewers need.
"""

from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.charts import bar_chart
from marketplace import dashboard as selectors
from portal.decorators import org_member_required
from portal.roles import Permission


def _install_chart(figures: selectors.PartnerDashboard) -> dict:
    return bar_chart(
        [
            (week.start.strftime("%-d %b"), Decimal(week.active_at_end), False)
            for week in figures.weeks
        ]
    )


def _usage_chart(figures: selectors.PartnerDashboard, meter_code: str) -> dict:
    # Calls (events) per day: the one figure that adds up for every kind of meter.
    return bar_chart(
        [
            (day.day.strftime("%-d %b"), Decimal(day.events), False)
            for day in figures.usage_days.get(meter_code, [])
        ]
    )


def _chosen_meter(figures: selectors.PartnerDashboard, requested: str) -> str | None:
    """The meter of the usage chart: the one asked for if the apps used it, else calls.
    An unknown or foreign code is ignored rather than refused: it only picks a chart."""
    codes = [usage.meter.code for usage in figures.meters]
    if requested in codes:
        return requested
    return codes[0] if codes else None


def _render(request: HttpRequest, app_id=None) -> HttpResponse:
    partner = selectors.approved_partner_get(organization=request.organization)
    figures = selectors.partner_dashboard(partner=partner, app_id=app_id)
    meter_code = _chosen_meter(figures, request.GET.get("meter", "")[:64])
    return render(
        request,
        "marketplace/dashboard.html",
        {
            "nav_section": "partner",
            "figures": figures,
            "install_chart": _install_chart(figures),
            "meter_code": meter_code,
            "usage_chart": _usage_chart(figures, meter_code) if meter_code else None,
        },
    )


@org_member_required(Permission.BILLING_MANAGE)
def dashboard(request: HttpRequest) -> HttpResponse:
    return _render(request)


@org_member_required(Permission.BILLING_MANAGE)
def dashboard_app(request: HttpRequest, app_id) -> HttpResponse:
    return _render(request, app_id=app_id)
