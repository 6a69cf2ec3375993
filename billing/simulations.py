"""Bill simulation (BILL-7): what the last periods would have cost on another plan.

Each period's ledger usage is priced twice with the shared engine (billing.quotes): as it
was, on the plan versions in force phase by phase (the preview's own segments), and as it
would have been on the other plan's current version for the whole period. Both leave out
coupons and prepaid credit, which depend on the account rather than the plan, and both
include the add-ons held during the period, so the difference is the plans' prices alone.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.utils import timezone

from billing import entitlements
from billing import subscriptions as subs
from billing.alerts import subscription_period_at
from billing.models import AddOn, Plan, PlanVersion, Subscription, SubscriptionAddOn
from billing.pricing.money import ZERO
from billing.quotes import Quote, Segment, build_quote
from common.errors import InvalidInput, NotFound
from portal.models import Organization

MAX_PERIODS = 12
DEFAULT_PERIODS = 3


@dataclass
class SimulatedPeriod:
    start: datetime
    end: datetime
    partial: bool  # the current period, measured up to now
    actual: Quote
    simulated: Quote

    @property
    def difference(self) -> Decimal:
        return self.simulated.total - self.actual.total


@dataclass
class Simulation:
    organization: Organization
    plan: Plan
    version: PlanVersion
    currency: str
    as_of: datetime
    periods: list[SimulatedPeriod]

    @property
    def actual_total(self) -> Decimal:
        return sum((period.actual.total for period in self.periods), ZERO)

    @property
    def simulated_total(self) -> Decimal:
        return sum((period.simulated.total for period in self.periods), ZERO)

    @property
    def difference(self) -> Decimal:
        return self.simulated_total - self.actual_total


def simulation_periods_check(periods) -> int:
    if isinstance(periods, bool) or not isinstance(periods, int):
        raise InvalidInput(
            f"periods is a whole number from 1 to {MAX_PERIODS}.",
            field="periods",
            code="invalid_periods",
        )
    if not 1 <= periods <= MAX_PERIODS:
        raise InvalidInput(
            f"periods is from 1 to {MAX_PERIODS}.", field="periods", code="invalid_periods"
        )
    return periods


def _recent_periods(
    first_start: datetime, period_of, count: int, now: datetime
) -> list[tuple[datetime, datetime, bool]]:
    """The `count` most recent closed periods, oldest first; with fewer closed ones than
    that, the current period too, marked partial. `period_of(moment)` is [start, end)."""
    current_start, current_end = period_of(now)
    closed = []
    cursor = current_start
    while len(closed) < count and cursor > first_start:
        start, end = period_of(cursor - timedelta(microseconds=1))
        closed.append((start, end, False))
        cursor = start
    closed.reverse()
    if len(closed) < count:
        closed.append((current_start, current_end, True))
    return closed


def _calendar_month(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start + relativedelta(months=1)


def _period_addons(
    subscription: Subscription | None, start: datetime, end: datetime
) -> list[tuple[AddOn, int]]:
    """Add-ons held at any time during [start, end), each for the whole period."""
    if subscription is None:
        return []
    items = (
        SubscriptionAddOn.objects.filter(subscription=subscription, added_at__lt=end)
        .exclude(removed_at__lte=start)
        .select_related("addon")
    )
    return [(item.addon, item.quantity) for item in items]


def _simulated_segment(
    organization: Organization,
    version: PlanVersion,
    start: datetime,
    end: datetime,
    billable_from: datetime,
    as_of: datetime,
) -> Segment:
    """The other plan for the whole period: its base fee for the billable time (a trial's
    time stays free, as it was), and the period's usage of each meter it charges."""
    if billable_from >= end:
        return Segment(version=version, usage={}, base_fee_share=ZERO, starts_at=start, ends_at=end)
    measured_end = min(end, as_of)
    usage = {
        charge.meter.code: subs._usage(organization.id, charge.meter, billable_from, measured_end)
        for charge in version.charges.select_related("meter")
    }
    share = Decimal((end - billable_from).total_seconds()) / Decimal((end - start).total_seconds())
    return Segment(
        version=version,
        usage=usage,
        base_fee_share=share,
        starts_at=billable_from,
        ends_at=end,
    )


def _interval_of(subscription: Subscription, now: datetime) -> tuple[str, str]:
    """(interval, currency) of the plan in force (the last phase, once the period closed)."""
    phase = subs.phase_at(subscription, now)
    if phase is None:
        phase = (
            subscription.phases.select_related("plan_version__plan").order_by("-starts_at").first()
        )
    plan = phase.plan_version.plan
    return plan.interval, plan.currency


def simulate(
    *,
    organization: Organization,
    plan: Plan,
    periods: int = DEFAULT_PERIODS,
    now: datetime | None = None,
) -> Simulation:
    """The org's last `periods` closed billing periods (as many as there are, plus the
    current one, partial, when there are fewer) priced as they were and on `plan`.

    Periods are the subscription's billing periods (anniversary or calendar, in the org's
    billing time zone, as invoices close them); an org without a subscription is
    compared from the Free plan over calendar months (UTC) since it was created.
    """
    periods = simulation_periods_check(periods)
    now = now or timezone.now()
    version = plan.current_version()
    if version is None:
        raise NotFound(f"No plan '{plan.code}'.", code="unknown_plan")
    subscription = subs.subscription_current(organization=organization)
    if subscription is not None:
        interval, currency = _interval_of(subscription, now)

        def period_of(moment):
            return subscription_period_at(subscription, moment)

        first_start = subscription.started_at
        free_version = None
    else:
        free = Plan.objects.filter(code=entitlements.FREE_PLAN_CODE).first()
        free_version = free.current_version() if free else None
        if free_version is None:
            raise NotFound(
                "No subscription, and no Free plan to compare with.", code="no_subscription"
            )
        interval, currency = free.interval, free.currency
        period_of = _calendar_month
        first_start = _calendar_month(organization.created_at)[0]
    if plan.currency != currency:
        raise InvalidInput(
            f"{plan.name} is priced in {plan.currency}, your bills in {currency}.",
            field="plan",
            code="currency_mismatch",
        )
    if plan.interval != interval:
        raise InvalidInput(
            f"{plan.name} is billed per {plan.interval}, your periods are one {interval} long.",
            field="plan",
            code="interval_mismatch",
        )
    result = []
    for start, end, partial in _recent_periods(first_start, period_of, periods, now):
        as_of = min(end, now)
        addons = _period_addons(subscription, start, end)
        if subscription is not None:
            segments = subs._segments(subscription, start, end, as_of)
            # A calendar-billed first period starts before the subscription did.
            billable_from = max(start, subscription.started_at, subscription.trial_ends_at or start)
        else:
            segments = [_simulated_segment(organization, free_version, start, end, start, as_of)]
            billable_from = start
        if not segments:
            continue  # no phase covered it (cannot happen for a live subscription)
        actual = build_quote(segments=segments, addons=addons)
        simulated = build_quote(
            segments=[_simulated_segment(organization, version, start, end, billable_from, as_of)],
            addons=addons,
        )
        result.append(
            SimulatedPeriod(
                start=start, end=end, partial=partial, actual=actual, simulated=simulated
            )
        )
    return Simulation(
        organization=organization,
        plan=plan,
        version=version,
        currency=currency,
        as_of=now,
        periods=result,
    )
