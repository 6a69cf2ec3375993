"""Reads for the partner dashboard: installs over time, aggregated usage, earnings, payouts.

Everything is scoped to one approved partner (and optionally one of its apps) and is
aggregated: the partner sees totals per app, meter, day and month and how many orgs they
come from, never which org. A fixed number of grouped queries whatever the number of
apps, installs or keys (the page's query count is tested).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from billing.models import Meter, UsageRollup
from billing.pricing.money import round_money
from billing.selectors import display_quantity
from common.errors import NotFound
from keys.models import ApiKey
from marketplace.models import App, Install, Partner, Payout, RevenueShareEntry
from portal.models import Organization

INSTALL_WEEKS = 13  # the current week and the 12 before it: the last 90 days, in whole weeks
USAGE_DAYS = 30
CALLS_METER = "requests"  # one `requests` event per call through the gate
# Quantities that add up across organizations; a max is a max of maxima. Unique counts
# and last values of different orgs do not combine, so only their event counts are shown.
ADDITIVE = (Meter.Aggregation.COUNT, Meter.Aggregation.SUM)
ZERO = Decimal(0)


@dataclass(frozen=True)
class InstallWeek:
    start: date
    installs: int  # new installs (a reinstall is a new install)
    uninstalls: int
    active_at_end: int  # active installs at the week's end (or now, for this week)


@dataclass(frozen=True)
class MeterUsage:
    meter: Meter
    events: int
    quantity: Decimal | None  # in the meter's shown unit; None where orgs do not combine


@dataclass(frozen=True)
class UsageDay:
    day: date
    events: int
    quantity: Decimal | None


@dataclass(frozen=True)
class MoneyFigures:
    currency: str
    earnings: Decimal
    reversals: Decimal  # negative or zero
    net: Decimal


@dataclass(frozen=True)
class EarningsMonth(MoneyFigures):
    month: date = date.min


@dataclass(frozen=True)
class PaidMonth:
    month: date
    currency: str
    amount: Decimal
    count: int


@dataclass(frozen=True)
class AppFigures:
    """One row of the all-apps table."""

    app: App
    active_installs: int
    installs: int
    uninstalls: int
    installing_orgs: int  # distinct orgs whose usage of the app is in the usage window
    calls: int
    net: list[tuple[str, Decimal]]  # all-time net earnings per currency


@dataclass
class PartnerDashboard:
    partner: Partner
    app: App | None  # None: every app of the partner
    apps: list[App]
    now: datetime
    install_start: datetime
    weeks: list[InstallWeek]
    active_installs: int
    installs: int
    uninstalls: int
    usage_start: datetime
    installing_orgs: int
    meters: list[MeterUsage]
    usage_days: dict[str, list[UsageDay]]  # by meter code, every day of the window
    earnings: list[EarningsMonth]  # newest month first
    earnings_totals: list[MoneyFigures]
    paid: list[PaidMonth]  # newest month first
    paid_totals: list[tuple[str, Decimal]]
    pending_totals: list[tuple[str, Decimal]]
    app_rows: list[AppFigures] = field(default_factory=list)


def approved_partner_get(*, organization: Organization) -> Partner:
    """The organization's partner record, if the operator approved it (else not found:
    the dashboard exists only for partners in good standing)."""
    partner = Partner.objects.filter(
        organization=organization, status=Partner.Status.APPROVED
    ).first()
    if partner is None:
        raise NotFound("Only an approved partner has a dashboard.", code="partner_not_approved")
    return partner


def dashboard_apps(*, partner: Partner) -> list[App]:
    return list(
        App.objects.filter(partner=partner)
        .only("id", "name", "slug", "state", "certified", "partner_id")
        .order_by("name", "id")
    )


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def install_window_start(now: datetime) -> datetime:
    """Monday 00:00 UTC, 12 weeks before this week's Monday."""
    monday = now.astimezone(UTC).date() - timedelta(days=now.astimezone(UTC).weekday())
    return _start_of_day(monday - timedelta(weeks=INSTALL_WEEKS - 1))


def usage_window_start(now: datetime) -> datetime:
    """00:00 UTC of the day 29 days ago: today and the 29 days before it."""
    return _start_of_day(now.astimezone(UTC).date() - timedelta(days=USAGE_DAYS - 1))


def _as_date(value) -> date:
    return value.astimezone(UTC).date() if isinstance(value, datetime) else value


# --- Installs ----------------------------------------------------------------------------------
def _install_figures(*, app_ids: list, start: datetime, now: datetime) -> dict:
    installs = Install.objects.filter(app_id__in=app_ids).order_by()
    new_by = defaultdict(int)  # (app_id, week) -> count
    for row in (
        installs.filter(installed_at__gte=start, installed_at__lte=now)
        .annotate(week=TruncWeek("installed_at", tzinfo=UTC))
        .values("app_id", "week")
        .annotate(count=Count("id"))
    ):
        new_by[(row["app_id"], _as_date(row["week"]))] += row["count"]
    gone_by = defaultdict(int)
    for row in (
        installs.filter(uninstalled_at__gte=start, uninstalled_at__lte=now)
        .annotate(week=TruncWeek("uninstalled_at", tzinfo=UTC))
        .values("app_id", "week")
        .annotate(count=Count("id"))
    ):
        gone_by[(row["app_id"], _as_date(row["week"]))] += row["count"]
    active_by_app = dict(
        installs.filter(installed_at__lte=now, uninstalled_at__isnull=True)
        .values("app_id")
        .annotate(count=Count("id"))
        .values_list("app_id", "count")
    )
    # Active at each week's end in one query: installed before it, not uninstalled by it.
    week_starts = [start.date() + timedelta(weeks=index) for index in range(INSTALL_WEEKS)]
    ends = [min(_start_of_day(week + timedelta(weeks=1)), now) for week in week_starts]
    active_at = installs.aggregate(
        **{
            f"week_{index}": Count(
                "id",
                filter=Q(installed_at__lte=end)
                & (Q(uninstalled_at__isnull=True) | Q(uninstalled_at__gt=end)),
            )
            for index, end in enumerate(ends)
        }
    )
    weeks = [
        InstallWeek(
            start=week,
            installs=sum(new_by[(app_id, week)] for app_id in app_ids),
            uninstalls=sum(gone_by[(app_id, week)] for app_id in app_ids),
            active_at_end=active_at[f"week_{index}"],
        )
        for index, week in enumerate(week_starts)
    ]
    return {
        "weeks": weeks,
        "active_by_app": active_by_app,
        "new_by_app": _sum_by_app(new_by),
        "gone_by_app": _sum_by_app(gone_by),
    }


def _sum_by_app(counts: dict) -> dict:
    totals: dict = defaultdict(int)
    for (app_id, _week), count in counts.items():
        totals[app_id] += count
    return totals


# --- Usage -------------------------------------------------------------------------------------
def _app_rollups(*, app_ids: list, start: datetime, now: datetime):
    """The usage rollups of the apps' keys (the twin keys of their OAuth tokens), each
    annotated with its app. Narrowed to the orgs those keys belong to first, so the
    rollups' (organization, meter, environment, hour) index does the work."""
    keys = ApiKey.objects.filter(app_id__in=app_ids).order_by()
    return (
        UsageRollup.objects.filter(
            organization_id__in=keys.values("organization_id"),
            api_key_id__in=keys.values("id"),
            hour__gte=start,
            hour__lte=now,
        )
        .order_by()
        .annotate(
            app_id=Subquery(ApiKey.objects.filter(pk=OuterRef("api_key_id")).values("app_id")[:1])
        )
    )


def _quantity(meter: Meter, total: Decimal | None, maximum: Decimal | None) -> Decimal | None:
    if meter.aggregation in ADDITIVE:
        return display_quantity(meter, total or ZERO)
    if meter.aggregation == Meter.Aggregation.MAX:
        return display_quantity(meter, maximum)
    return None


def _usage_figures(*, app_ids: list, start: datetime, now: datetime) -> dict:
    rollups = _app_rollups(app_ids=app_ids, start=start, now=now)
    by_app_meter = list(
        rollups.values("app_id", "meter_id").annotate(
            events=Sum("event_count"), total=Sum("quantity_sum"), maximum=Max("quantity_max")
        )
    )
    by_day_meter = list(
        rollups.annotate(day=TruncDay("hour", tzinfo=UTC))
        .values("day", "meter_id")
        .annotate(events=Sum("event_count"), total=Sum("quantity_sum"), maximum=Max("quantity_max"))
    )
    orgs_by_app = dict(
        rollups.values("app_id")
        .annotate(orgs=Count("organization_id", distinct=True))
        .values_list("app_id", "orgs")
    )
    installing_orgs = rollups.aggregate(orgs=Count("organization_id", distinct=True))["orgs"]
    meter_ids = {row["meter_id"] for row in by_app_meter}
    meters = {meter.id: meter for meter in Meter.objects.filter(id__in=meter_ids)}

    per_meter: dict = {}
    calls_by_app: dict = defaultdict(int)
    for row in by_app_meter:
        meter = meters.get(row["meter_id"])
        if meter is None:  # a deleted meter: its rollups have nothing to show
            continue
        events, total, maximum = per_meter.get(meter.id, (0, ZERO, None))
        row_max = row["maximum"]
        per_meter[meter.id] = (
            events + (row["events"] or 0),
            total + (row["total"] or ZERO),
            maximum if row_max is None else row_max if maximum is None else max(maximum, row_max),
        )
        if meter.code == CALLS_METER:
            calls_by_app[row["app_id"]] += row["events"] or 0
    meter_usage = sorted(
        (
            MeterUsage(
                meter=meters[meter_id],
                events=events,
                quantity=_quantity(meters[meter_id], total, maximum),
            )
            for meter_id, (events, total, maximum) in per_meter.items()
        ),
        key=lambda usage: (usage.meter.code != CALLS_METER, usage.meter.code),
    )

    day_rows = {(_as_date(row["day"]), row["meter_id"]): row for row in by_day_meter}
    days = [start.date() + timedelta(days=index) for index in range(USAGE_DAYS)]
    usage_days = {}
    for meter_id, meter in meters.items():
        series = []
        for day in days:
            row = day_rows.get((day, meter_id))
            series.append(
                UsageDay(
                    day=day,
                    events=(row["events"] or 0) if row else 0,
                    quantity=_quantity(meter, row["total"], row["maximum"])
                    if row
                    else (_quantity(meter, ZERO, None)),
                )
            )
        usage_days[meter.code] = series
    return {
        "meters": meter_usage,
        "usage_days": usage_days,
        "installing_orgs": installing_orgs,
        "orgs_by_app": orgs_by_app,
        "calls_by_app": calls_by_app,
    }


# --- Money -------------------------------------------------------------------------------------
def _figures(currency: str, earnings: Decimal, reversals: Decimal) -> dict:
    # Entries are rounded one by one already; rounding the sums again changes nothing but
    # keeps every shown amount on the currency's minor unit.
    return {
        "currency": currency,
        "earnings": round_money(earnings, currency),
        "reversals": round_money(reversals, currency),
        "net": round_money(earnings + reversals, currency),
    }


def _earnings_figures(*, partner: Partner, app_ids: list, by_app: bool) -> dict:
    entries = RevenueShareEntry.objects.filter(partner=partner, app_id__in=app_ids).order_by()
    months: dict = defaultdict(lambda: [ZERO, ZERO])  # (month, currency) -> [earned, reversed]
    totals: dict = defaultdict(lambda: [ZERO, ZERO])
    for row in (
        entries.annotate(month=TruncMonth("recognized_at", tzinfo=UTC))
        .values("month", "currency", "kind")
        .annotate(amount=Sum("amount"))
    ):
        slot = 0 if row["kind"] == RevenueShareEntry.Kind.EARNING else 1
        months[(_as_date(row["month"]), row["currency"])][slot] += row["amount"]
        totals[row["currency"]][slot] += row["amount"]
    earnings = [
        EarningsMonth(month=month, **_figures(currency, earned, reversed_))
        for (month, currency), (earned, reversed_) in months.items()
    ]
    earnings.sort(key=lambda row: (-row.month.toordinal(), row.currency))
    net_by_app: dict = defaultdict(list)
    if by_app:
        for row in (
            entries.values("app_id", "currency")
            .annotate(amount=Sum("amount"))
            .order_by("app_id", "currency")
        ):
            net_by_app[row["app_id"]].append(
                (row["currency"], round_money(row["amount"], row["currency"]))
            )
    return {
        "earnings": earnings,
        "earnings_totals": [
            MoneyFigures(**_figures(currency, *totals[currency])) for currency in sorted(totals)
        ],
        "net_by_app": net_by_app,
    }


def _payout_figures(*, partner: Partner) -> dict:
    payouts = Payout.objects.filter(partner=partner).order_by()
    paid = [
        PaidMonth(
            month=_as_date(row["month"]),
            currency=row["currency"],
            amount=round_money(row["amount"], row["currency"]),
            count=row["count"],
        )
        for row in payouts.filter(status=Payout.Status.PAID, paid_at__isnull=False)
        .annotate(month=TruncMonth("paid_at", tzinfo=UTC))
        .values("month", "currency")
        .annotate(amount=Sum("amount"), count=Count("id"))
    ]
    paid.sort(key=lambda row: (-row.month.toordinal(), row.currency))
    paid_totals: dict = defaultdict(lambda: ZERO)
    for row in paid:
        paid_totals[row.currency] += row.amount
    pending = (
        payouts.filter(status=Payout.Status.PENDING)
        .values("currency")
        .annotate(amount=Sum("amount"))
        .order_by("currency")
    )
    return {
        "paid": paid,
        "paid_totals": sorted(paid_totals.items()),
        "pending_totals": [
            (row["currency"], round_money(row["amount"], row["currency"])) for row in pending
        ],
    }


# --- The page ----------------------------------------------------------------------------------
def partner_dashboard(
    *, partner: Partner, app_id=None, now: datetime | None = None
) -> PartnerDashboard:
    """Every figure of the dashboard, for all the partner's apps or for `app_id` (which
    must be the partner's: another partner's app is not found)."""
    now = now or timezone.now()
    apps = dashboard_apps(partner=partner)
    app = None
    if app_id is not None:
        app = next((candidate for candidate in apps if str(candidate.id) == str(app_id)), None)
        if app is None:
            raise NotFound("No such app.", code="app_not_found")
    app_ids = [app.id] if app else [candidate.id for candidate in apps]
    install_start = install_window_start(now)
    usage_start = usage_window_start(now)
    installs = _install_figures(app_ids=app_ids, start=install_start, now=now)
    usage = _usage_figures(app_ids=app_ids, start=usage_start, now=now)
    money = _earnings_figures(partner=partner, app_ids=app_ids, by_app=app is None)
    payouts = _payout_figures(partner=partner)
    app_rows = []
    if app is None:
        app_rows = [
            AppFigures(
                app=candidate,
                active_installs=installs["active_by_app"].get(candidate.id, 0),
                installs=installs["new_by_app"].get(candidate.id, 0),
                uninstalls=installs["gone_by_app"].get(candidate.id, 0),
                installing_orgs=usage["orgs_by_app"].get(candidate.id, 0),
                calls=usage["calls_by_app"].get(candidate.id, 0),
                net=money["net_by_app"].get(candidate.id, []),
            )
            for candidate in apps
        ]
    return PartnerDashboard(
        partner=partner,
        app=app,
        apps=apps,
        now=now,
        install_start=install_start,
        weeks=installs["weeks"],
        active_installs=sum(installs["active_by_app"].get(app_id, 0) for app_id in app_ids),
        installs=sum(week.installs for week in installs["weeks"]),
        uninstalls=sum(week.uninstalls for week in installs["weeks"]),
        usage_start=usage_start,
        installing_orgs=usage["installing_orgs"],
        meters=usage["meters"],
        usage_days=usage["usage_days"],
        earnings=money["earnings"],
        earnings_totals=money["earnings_totals"],
        paid=payouts["paid"],
        paid_totals=payouts["paid_totals"],
        pending_totals=payouts["pending_totals"],
        app_rows=app_rows,
    )
