"""Portal pages for usage: period to date, forecast, and breakdowns drawn as SVG."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing import selectors
from billing.charts import bar_chart
from billing.models import Meter, Plan
from billing.profiles import billing_zone
from billing.subscriptions import period_containing, phase_at, subscription_current
from billing.usage_csv import EXPORT_COLUMNS, export_lines
from portal.decorators import org_member_required
from portal.roles import Permission

BREAKDOWNS = (("project", "By project"), ("endpoint", "By endpoint"), ("key", "By key"))


def current_period(now: datetime, organization=None) -> tuple[datetime, datetime]:
    """The subscription's billing period containing `now`, else the calendar month (UTC)."""
    subscription = (
        subscription_current(organization=organization) if organization is not None else None
    )
    if subscription is not None:
        interval, calendar = Plan.Interval.MONTH, False
        phase = phase_at(subscription, min(now, subscription.current_period_end))
        if phase is not None:
            interval = phase.plan_version.plan.interval
            calendar = phase.plan_version.plan.calendar_billing
        return period_containing(
            subscription.started_at,
            interval,
            now,
            zone=billing_zone(subscription.organization_id),
            calendar=calendar,
        )
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def forecast(meter: Meter, to_date: Decimal | None, start, end, now) -> Decimal | None:
    """Straight-line forecast for additive meters; a gauge (max, last, unique) stays put."""
    if to_date is None:
        return None
    if meter.aggregation not in (Meter.Aggregation.COUNT, Meter.Aggregation.SUM):
        return to_date
    elapsed = (now - start).total_seconds()
    if elapsed <= 0:
        return to_date
    return (to_date * Decimal((end - start).total_seconds()) / Decimal(elapsed)).quantize(
        Decimal(1)
    )


@org_member_required(Permission.ORG_VIEW)
def usage(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    start, end = current_period(now, request.organization)
    environment = "test" if request.GET.get("environment") == "test" else "live"
    meters = list(selectors.meter_list())
    selected = next((m for m in meters if m.code == request.GET.get("meter")), None)
    selected = selected or (meters[0] if meters else None)

    def usage_filter(meter: Meter, group_by: tuple[str, ...] = ()) -> selectors.UsageFilter:
        return selectors.UsageFilter(
            organization_id=request.organization.id,
            meter=meter,
            start=start,
            end=now,
            environment=environment,
            group_by=group_by,
        )

    summaries = []
    for meter in meters:
        [total] = selectors.usage_aggregate(usage_filter(meter))
        to_date = total["quantity"]
        summaries.append(
            {
                "meter": meter,
                "to_date": _shown(meter, to_date),
                "forecast": _shown(meter, forecast(meter, to_date, start, end, now)),
            }
        )

    context = {
        "summaries": summaries,
        "selected": selected,
        "environment": environment,
        "period_start": start,
        "period_end": end,
        "now": now,
        "nav_section": "usage",
    }
    if selected is not None:
        by_day = {
            row["day"]: row["quantity"]
            for row in selectors.usage_aggregate(usage_filter(selected, ("day",)))
        }
        context["daily_chart"] = bar_chart(_daily_points(selected, by_day, start, end, now))
        context["breakdowns"] = []
        for group, title in BREAKDOWNS:
            rows = [
                {
                    "label": _label(group, row[group], request.organization),
                    "value": selectors.display_quantity(selected, row["quantity"]) or Decimal(0),
                }
                for row in selectors.usage_aggregate(usage_filter(selected, (group,)))
            ]
            rows.sort(key=lambda row: row["value"], reverse=True)
            largest = max((row["value"] for row in rows), default=0) or 1
            for row in rows:
                row["share"] = round(float(row["value"] / largest) * 100, 1)
                row["quantity"] = selectors.format_decimal(row["value"])
            context["breakdowns"].append({"title": title, "rows": rows[:10]})
    return render(request, "billing/usage.html", context)


def _shown(meter: Meter, quantity: Decimal | None) -> str | None:
    """In the display unit, without trailing zeros ("3.4", "40504")."""
    return selectors.format_decimal(selectors.display_quantity(meter, quantity))


def _daily_points(meter: Meter, by_day: dict, start, end, now) -> list:
    """One bar per day of the period; days to come show the daily pace for additive meters."""
    elapsed_days = max((now - start).total_seconds() / 86400, 1 / 24)
    pace = Decimal(0)
    if meter.aggregation in (Meter.Aggregation.COUNT, Meter.Aggregation.SUM):
        total = sum((value for value in by_day.values() if value), Decimal(0))
        pace = total / Decimal(str(round(elapsed_days, 6)))
    points = []
    day = start.date()
    while day < end.date():
        future = day > now.date()
        value = pace if future else (by_day.get(day) or Decimal(0))
        points.append((day.strftime("%d"), selectors.display_quantity(meter, value), future))
        day += timedelta(days=1)
    return points


def _label(group: str, value, organization) -> str:
    if value is None or value == "":
        return "(none)" if group != "endpoint" else "(not recorded)"
    if group == "project":
        project = organization.projects.filter(id=value).first()
        return project.name if project else str(value)
    if group == "key":
        from keys.models import ApiKey

        key = ApiKey.objects.filter(organization=organization, id=value).first()
        return f"{key.name} ({key.prefix}…)" if key else str(value)
    return str(value)


@org_member_required(Permission.ORG_VIEW)
def usage_csv(request: HttpRequest) -> HttpResponse:
    """The ledger rows behind the page's figures for one meter, this period, streamed."""
    now = timezone.now()
    start, _end = current_period(now, request.organization)
    meter = selectors.meter_get_by_code(request.GET.get("meter", ""))
    if meter is None:
        return HttpResponse("Unknown meter.", status=400, content_type="text/plain")
    environment = "test" if request.GET.get("environment") == "test" else "live"
    usage_filter = selectors.UsageFilter(
        organization_id=request.organization.id,
        meter=meter,
        start=start,
        end=now,
        environment=environment,
    )
    response = StreamingHttpResponse(
        export_lines(selectors.usage_export_rows(usage_filter)), content_type="text/csv"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{request.organization.slug}-{meter.code}-{start:%Y-%m}.csv"'
    )
    return response


__all__ = ["EXPORT_COLUMNS", "usage", "usage_csv"]
