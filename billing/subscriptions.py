"""Subscriptions: subscribe, change plan (prorated by phase), cancel, add-ons, migrations,
and the bill preview and estimates built on billing.quotes.

Periods are anchored at the subscription's start (anniversary billing): a subscription
started on the 31st renews on the last day of shorter months. Proration is by phases: a
plan change closes the running phase and opens another, each phase pays its share of its
version's base fee for the time it covered, and usage is priced under the version in force
when it happened (docs/pricing.md).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing import entitlements
from billing import webhook_events as events
from billing.models import (
    AddOn,
    Coupon,
    CreditGrant,
    Meter,
    Plan,
    PlanVersion,
    Subscription,
    SubscriptionAddOn,
    SubscriptionPhase,
)
from billing.pricing.money import ZERO
from billing.profiles import billing_zone, tax_spec_for
from billing.quotes import Quote, Segment, build_quote
from billing.selectors import UsageFilter, usage_aggregate
from common.errors import Conflict, InvalidInput, NotFound
from common.orgflags import SPEND_CAP_REACHED, flag_clear, flag_set
from common.redis import get_redis
from portal.audit import Actor, audit_record
from portal.models import Organization
from webhooks.catalog import timestamp
from webhooks.services import emit

ADDITIVE = (Meter.Aggregation.COUNT, Meter.Aggregation.SUM)


# --- Reads ------------------------------------------------------------------------------
def subscription_current(*, organization: Organization) -> Subscription | None:
    return (
        Subscription.objects.filter(organization=organization)
        .exclude(status=Subscription.Status.CANCELED)
        .select_related("coupon")
        .first()
    )


def plan_get(*, code: str, include_private: bool = False) -> Plan:
    plans = Plan.objects.all() if include_private else Plan.objects.filter(public=True)
    plan = plans.filter(code=code).first() if isinstance(code, str) else None
    if plan is None or plan.current_version() is None:
        raise NotFound(f"No plan '{code}'.", code="unknown_plan")
    return plan


def public_plans() -> QuerySet[Plan]:
    return Plan.objects.filter(public=True).prefetch_related("versions")


def period_containing(
    started_at: datetime,
    interval: str,
    moment: datetime,
    *,
    zone: str = "UTC",
    calendar: bool = False,
) -> tuple[datetime, datetime]:
    """The [start, end) billing period of a subscription that contains `moment`.

    Periods are counted in the org's billing time zone, so a monthly period that starts at
    midnight in Los Angeles starts at midnight there after a DST change too (and is an hour
    shorter or longer in UTC). Anniversary periods repeat from `started_at` (a subscription
    started on the 31st renews on the last day of shorter months); calendar periods start on
    the 1st of the month (of January for yearly plans) at midnight.
    """
    tz = ZoneInfo(zone)
    months = 12 if interval == Plan.Interval.YEAR else 1
    anchor = started_at.astimezone(tz).replace(tzinfo=None)
    if calendar:
        anchor = anchor.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if months == 12:
            anchor = anchor.replace(month=1)
    local_moment = moment.astimezone(tz).replace(tzinfo=None)
    index = 0
    if local_moment > anchor:
        elapsed = (local_moment.year - anchor.year) * 12 + local_moment.month - anchor.month
        index = max(elapsed // months - 1, 0)

    def boundary(n: int) -> datetime:
        # Wall-clock arithmetic, then back to an instant (fold=0 on ambiguous times).
        return (anchor + relativedelta(months=months * n)).replace(tzinfo=tz).astimezone(UTC)

    while boundary(index + 1) <= moment:
        index += 1
    return boundary(index), boundary(index + 1)


def next_period_end(subscription: Subscription, end: datetime, plan, zone: str) -> datetime:
    """The end of the period that starts at `end`.

    Normally the next boundary after `end`. If the customer changed its billing time zone,
    the new zone's boundaries sit a few hours off the old one's: the next period then runs
    from `end` to the boundary about one period later (a few hours longer or shorter),
    never to a boundary a few hours away."""
    _start, next_end = period_containing(
        subscription.started_at,
        plan.interval if plan else Plan.Interval.MONTH,
        end + timedelta(days=1),
        zone=zone,
        calendar=bool(plan and plan.calendar_billing),
    )
    return next_end


def active_phases(subscription: Subscription, start: datetime, end: datetime) -> list:
    """Phases overlapping [start, end), oldest first, with versions and charges loaded."""
    return list(
        subscription.phases.filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=start), starts_at__lt=end
        )
        .select_related("plan_version__plan")
        .prefetch_related("plan_version__charges__meter")
        .order_by("starts_at")
    )


def phase_at(subscription: Subscription, moment: datetime) -> SubscriptionPhase | None:
    return (
        subscription.phases.filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=moment), starts_at__lte=moment
        )
        .select_related("plan_version__plan")
        .first()
    )


def scheduled_migration(subscription: Subscription, now: datetime | None = None):
    """The phase that will replace the current one (grandfathering), if one is scheduled."""
    now = now or timezone.now()
    return (
        subscription.phases.filter(starts_at__gt=now)
        .select_related("plan_version__plan")
        .order_by("starts_at")
        .first()
    )


# --- Writes -----------------------------------------------------------------------------
def _check_coupon(coupon_code: str | None, currency: str) -> Coupon | None:
    if not coupon_code:
        return None
    coupon = Coupon.objects.filter(code=coupon_code, active=True).first()
    if coupon is None:
        raise InvalidInput(
            f"No active coupon '{coupon_code}'.", field="coupon", code="unknown_coupon"
        )
    if coupon.kind == Coupon.Kind.AMOUNT and coupon.currency not in ("", currency):
        raise InvalidInput("The coupon is in another currency.", field="coupon")
    return coupon


def subscription_subscribe(
    *,
    actor: Actor,
    organization: Organization,
    plan: Plan,
    coupon_code: str | None = None,
    now: datetime | None = None,
) -> Subscription:
    """Subscribes the org to the plan's current version, or changes its plan if it has one."""
    now = now or timezone.now()
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        current = subscription_current(organization=organization)
        if current is not None:
            return subscription_change_plan(actor=actor, subscription=current, plan=plan, now=now)
        version = plan.current_version()
        coupon = _check_coupon(coupon_code, plan.currency)
        period_start, period_end = period_containing(
            now,
            plan.interval,
            now,
            zone=billing_zone(organization.id),
            calendar=plan.calendar_billing,
        )
        trial_ends_at = now + timedelta(days=plan.trial_days) if plan.trial_days else None
        subscription = Subscription.objects.create(
            organization=organization,
            status=Subscription.Status.TRIALING if trial_ends_at else Subscription.Status.ACTIVE,
            started_at=now,
            current_period_start=period_start,
            current_period_end=period_end,
            trial_ends_at=trial_ends_at,
            coupon=coupon,
        )
        SubscriptionPhase.objects.create(
            subscription=subscription, plan_version=version, starts_at=now
        )
        if (
            plan.pay_in_advance
            and version.base_fee
            and not (trial_ends_at and trial_ends_at >= period_end)
        ):
            from billing.invoicing import opening_invoice

            subscription_id = subscription.pk
            transaction.on_commit(lambda: opening_invoice(subscription_id=subscription_id, now=now))
        audit_record(
            actor=actor,
            action="subscription.created",
            organization=organization,
            target=subscription,
            changes={
                "plan": plan.code,
                "version": version.number,
                "coupon": coupon.code if coupon else None,
            },
        )
        emit(
            organization=organization,
            type="subscription.created",
            data=events.subscription_data(
                subscription, version, coupon=coupon.code if coupon else None
            ),
        )
        entitlements.invalidate(organization.id)
    return subscription


def subscription_change_plan(
    *, actor: Actor, subscription: Subscription, plan: Plan, now: datetime | None = None
) -> Subscription:
    """Moves to the plan's current version now; the running phase ends here (proration)."""
    now = now or timezone.now()
    version = plan.current_version()
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        running = phase_at(subscription, now)
        if running is not None and running.plan_version_id == version.id:
            raise Conflict(f"Already subscribed to {plan.name}.", code="already_on_plan")
        if running is not None and running.plan_version.plan.currency != plan.currency:
            raise InvalidInput(
                "Changing currency mid-subscription is not supported.",
                field="plan",
                code="currency_mismatch",
            )
        # Scheduled migrations are superseded by an explicit choice.
        subscription.phases.filter(starts_at__gt=now).delete()
        if running is not None:
            running.ends_at = now
            running.save(update_fields=["ends_at"])
        SubscriptionPhase.objects.create(
            subscription=subscription, plan_version=version, starts_at=now
        )
        subscription.cancel_at_period_end = False
        subscription.save(update_fields=["cancel_at_period_end"])
        audit_record(
            actor=actor,
            action="subscription.plan_changed",
            organization=subscription.organization,
            target=subscription,
            changes={
                "from": str(running.plan_version) if running else None,
                "to": str(version),
                "at": now.isoformat(),
            },
        )
        emit(
            organization=subscription.organization_id,
            type="subscription.updated",
            data=events.subscription_data(
                subscription,
                version,
                change="plan_changed",
                effective_at=timestamp(now),
                previous=events.plan_reference(running.plan_version) if running else None,
            ),
        )
        entitlements.invalidate(subscription.organization_id)
    return subscription


def subscription_cancel(*, actor: Actor, subscription: Subscription) -> Subscription:
    """Cancels at the end of the current period (the period close ends it)."""
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if not subscription.cancel_at_period_end:
            subscription.cancel_at_period_end = True
            subscription.save(update_fields=["cancel_at_period_end"])
            audit_record(
                actor=actor,
                action="subscription.cancel_scheduled",
                organization=subscription.organization,
                target=subscription,
                changes={"at": subscription.current_period_end.isoformat()},
            )
            emit(
                organization=subscription.organization_id,
                type="subscription.updated",
                data=events.subscription_data(
                    subscription,
                    _version_in_force(subscription),
                    change="cancel_scheduled",
                    effective_at=timestamp(subscription.current_period_end),
                ),
            )
    return subscription


def _version_in_force(subscription: Subscription) -> PlanVersion:
    """For event data: the version in force now, else the latest phase's."""
    phase = phase_at(subscription, timezone.now()) or (
        subscription.phases.select_related("plan_version__plan").order_by("-starts_at").first()
    )
    return phase.plan_version


def subscription_add_addon(
    *, actor: Actor, subscription: Subscription, addon: AddOn, quantity: int = 1
) -> SubscriptionAddOn:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 1000:
        raise InvalidInput("quantity is a whole number from 1 to 1000.", field="quantity")
    phase = phase_at(subscription, timezone.now())
    if phase is not None and addon.currency != phase.plan_version.plan.currency:
        raise InvalidInput(
            f"{addon.name} is priced in {addon.currency}, the plan in "
            f"{phase.plan_version.plan.currency}.",
            field="addon",
            code="currency_mismatch",
        )
    with transaction.atomic():
        item = SubscriptionAddOn.objects.create(
            subscription=subscription, addon=addon, quantity=quantity
        )
        audit_record(
            actor=actor,
            action="subscription.addon_added",
            organization=subscription.organization,
            target=item,
            changes={"addon": addon.code, "quantity": quantity},
        )
        emit(
            organization=subscription.organization_id,
            type="subscription.updated",
            data=events.subscription_data(
                subscription,
                phase.plan_version if phase is not None else _version_in_force(subscription),
                change="addon_added",
                effective_at=timestamp(item.added_at),
                addon={"code": addon.code, "quantity": quantity},
            ),
        )
        entitlements.invalidate(subscription.organization_id)
    return item


def subscription_remove_addon(
    *, actor: Actor, item: SubscriptionAddOn, now: datetime | None = None
) -> SubscriptionAddOn:
    """Ends an add-on now. A period bills the add-ons attached when it ends (docs/billing.md),
    so an add-on removed during a period is not billed for it."""
    now = now or timezone.now()
    with transaction.atomic():
        item = (
            SubscriptionAddOn.objects.select_for_update(of=("self",))
            .select_related("addon", "subscription__organization")
            .get(pk=item.pk)
        )
        if item.removed_at is not None:
            raise Conflict(f"{item.addon.name} was already removed.", code="addon_not_attached")
        item.removed_at = now
        item.save(update_fields=["removed_at"])
        subscription = item.subscription
        audit_record(
            actor=actor,
            action="subscription.addon_removed",
            organization=subscription.organization,
            target=item,
            changes={"addon": item.addon.code, "quantity": item.quantity},
        )
        phase = phase_at(subscription, now)
        emit(
            organization=subscription.organization_id,
            type="subscription.updated",
            data=events.subscription_data(
                subscription,
                phase.plan_version if phase is not None else _version_in_force(subscription),
                change="addon_removed",
                effective_at=timestamp(now),
                addon={"code": item.addon.code, "quantity": item.quantity},
            ),
        )
        entitlements.invalidate(subscription.organization_id)
    return item


def plan_migrate_subscribers(*, actor: Actor, version: PlanVersion) -> int:
    """Grandfathering ends: subscribers of older versions of this plan move to `version` at
    the start of their next period, which their portal shows until then."""
    count = 0
    now = timezone.now()
    with transaction.atomic():
        # The open-ended phase of each subscription: the running one, or a migration to
        # another version that is already scheduled (then this one takes its place).
        open_phases = (
            SubscriptionPhase.objects.filter(
                plan_version__plan=version.plan,
                ends_at__isnull=True,
                subscription__status__in=[Subscription.Status.ACTIVE, Subscription.Status.TRIALING],
            )
            .exclude(plan_version=version)
            .select_related("subscription")
        )
        for phase in open_phases:
            subscription = phase.subscription
            if phase.starts_at > now:
                at = phase.starts_at
                phase.delete()
            else:
                at = subscription.current_period_end
                subscription.phases.filter(starts_at__gt=now).delete()
                phase.ends_at = at
                phase.save(update_fields=["ends_at"])
            SubscriptionPhase.objects.create(
                subscription=subscription, plan_version=version, starts_at=at
            )
            audit_record(
                actor=actor,
                action="subscription.migration_scheduled",
                organization=subscription.organization,
                target=subscription,
                changes={"to": str(version), "at": at.isoformat()},
            )
            emit(
                organization=subscription.organization_id,
                type="subscription.updated",
                data=events.subscription_data(
                    subscription,
                    _version_in_force(subscription),
                    change="migration_scheduled",
                    effective_at=timestamp(at),
                    next=events.plan_reference(version),
                ),
            )
            count += 1
    return count


# --- Preview and estimates ----------------------------------------------------------------
@dataclass
class Preview:
    period_start: datetime
    period_end: datetime
    as_of: datetime
    to_date: Quote
    forecast: Quote


def _usage(organization_id, meter: Meter, start: datetime, end: datetime) -> Decimal:
    if end <= start:
        return ZERO
    [total] = usage_aggregate(
        UsageFilter(organization_id=organization_id, meter=meter, start=start, end=end)
    )
    return total["quantity"] or ZERO


def _segments(
    subscription: Subscription,
    start: datetime,
    end: datetime,
    as_of: datetime,
    extra: dict[str, Decimal] | None = None,
    forecast: bool = False,
    phases: list[SubscriptionPhase] | None = None,
    usage_reader=None,
) -> list[Segment]:
    """One segment per phase of [start, end); usage measured up to `as_of`.

    Time inside the trial is free: a phase's base-fee share and usage count from the end of
    the trial. A period entirely in trial still yields one (zero) segment, so the preview
    shows the plan's lines at 0.
    """
    period_seconds = Decimal((end - start).total_seconds())
    billable_from = max(start, subscription.trial_ends_at or start)
    segments = []
    usage_of = usage_reader or _usage  # the period close passes usage it read in bulk
    if phases is None:
        phases = active_phases(subscription, start, end)
    if phases and billable_from >= end:
        # An empty window: nothing of the period is billable, so its lines have no usage
        # (and no evidence) to re-read later.
        return [
            Segment(
                version=phases[-1].plan_version,
                usage={},
                base_fee_share=ZERO,
                starts_at=end,
                ends_at=end,
            )
        ]
    for position, phase in enumerate(phases):
        phase_start = max(phase.starts_at, billable_from)
        phase_end = min(phase.ends_at or end, end)
        if phase_end <= phase_start:
            continue
        measured_end = min(phase_end, as_of)
        usage = {}
        for charge in phase.plan_version.charges.all():
            meter = charge.meter
            quantity = usage_of(subscription.organization_id, meter, phase_start, measured_end)
            if forecast and meter.aggregation in ADDITIVE and measured_end < phase_end:
                # The rest of the phase at the pace of the period so far (not of the phase:
                # a phase that begins now, as in a plan-change preview, has no pace of its own).
                elapsed = Decimal((as_of - start).total_seconds())
                if elapsed > 0:
                    so_far = usage_of(subscription.organization_id, meter, start, as_of)
                    rest_from = max(measured_end, phase_start)  # a phase may start later
                    remaining = Decimal((phase_end - rest_from).total_seconds())
                    quantity += so_far * remaining / elapsed
            if extra and position == len(phases) - 1:
                quantity += extra.get(meter.code, ZERO)
            usage[meter.code] = quantity
        share = Decimal((phase_end - phase_start).total_seconds()) / period_seconds
        segments.append(
            Segment(
                version=phase.plan_version,
                usage=usage,
                base_fee_share=share,
                starts_at=phase_start,
                ends_at=phase_end,
            )
        )
    return segments


def _addons(subscription: Subscription) -> list[tuple[AddOn, int]]:
    items = subscription.addons.filter(removed_at__isnull=True).select_related("addon")
    return [(item.addon, item.quantity) for item in items]


def credit_usable(grant: CreditGrant, currency: str, at: datetime) -> bool:
    """A grant can pay a bill of `currency` for a period ending at `at`: a grant that expires
    exactly at the end of a period counts for that period's bill."""
    return (
        grant.currency == currency
        and grant.remaining > 0
        and (grant.expires_at is None or grant.expires_at >= at)
    )


def credits_available(organization: Organization, currency: str, at: datetime) -> Decimal:
    """Unused credit still valid at `at` (a period's end)."""
    grants = CreditGrant.objects.filter(
        organization=organization, currency=currency, remaining__gt=0
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gte=at))
    return sum((grant.remaining for grant in grants if credit_usable(grant, currency, at)), ZERO)


def _coupon_applies(subscription: Subscription) -> Coupon | None:
    coupon = subscription.coupon
    if coupon is None:
        return None
    if coupon.duration_periods is not None and (
        subscription.coupon_periods_used >= coupon.duration_periods
    ):
        return None
    return coupon


def _quote(subscription, segments) -> Quote:
    currency = segments[-1].version.plan.currency
    return build_quote(
        segments=segments,
        addons=_addons(subscription),
        coupon=_coupon_applies(subscription),
        credits_available=credits_available(
            subscription.organization, currency, subscription.current_period_end
        ),
        tax=tax_spec_for(subscription.organization),
    )


def subscription_preview(*, subscription: Subscription, now: datetime | None = None) -> Preview:
    """The upcoming invoice: usage so far, and forecast to period end at the current pace."""
    now = now or timezone.now()
    start, end = subscription.current_period_start, subscription.current_period_end
    return Preview(
        period_start=start,
        period_end=end,
        as_of=now,
        to_date=_quote(subscription, _segments(subscription, start, end, now)),
        forecast=_quote(subscription, _segments(subscription, start, end, now, forecast=True)),
    )


def subscription_preview_change(
    *, subscription: Subscription, plan: Plan, now: datetime | None = None
) -> tuple[Quote, Quote]:
    """(this period as things stand, this period if the plan changed now), without saving."""
    now = now or timezone.now()
    start, end = subscription.current_period_start, subscription.current_period_end
    before = _quote(subscription, _segments(subscription, start, end, now, forecast=True))
    with transaction.atomic():
        subscription_change_plan(
            actor=Actor.system("preview"), subscription=subscription, plan=plan, now=now
        )
        after = _quote(subscription, _segments(subscription, start, end, now, forecast=True))
        transaction.set_rollback(True)
    entitlements.invalidate(subscription.organization_id)
    return before, after


@dataclass
class Estimate:
    meter: Meter
    quantity: Decimal
    before: Quote
    after: Quote

    @property
    def difference(self) -> Decimal:
        return self.after.total - self.before.total


def subscription_estimate(
    *, subscription: Subscription, meter: Meter, quantity: Decimal, now: datetime | None = None
) -> Estimate:
    """What `quantity` more units of `meter` would add to this period's bill."""
    if quantity < 0:
        raise InvalidInput("quantity must not be negative.", field="quantity")
    now = now or timezone.now()
    start, end = subscription.current_period_start, subscription.current_period_end
    before = _quote(subscription, _segments(subscription, start, end, now))
    after = _quote(
        subscription, _segments(subscription, start, end, now, extra={meter.code: quantity})
    )
    return Estimate(meter=meter, quantity=quantity, before=before, after=after)


# --- Spend caps ---------------------------------------------------------------------------
SPEND_CAP_FLAG_SECONDS = 180  # the periodic check renews it; a stopped check lets it lapse


def subscription_set_spend_cap(
    *, actor: Actor, subscription: Subscription, amount: Decimal | None
) -> Subscription:
    """The customer's own ceiling for a period's bill (None removes it)."""
    if amount is not None and (not amount.is_finite() or amount <= 0):
        raise InvalidInput("A spend cap is a positive amount.", field="spend_cap")
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        old = locked.spend_cap
        locked.spend_cap = amount
        locked.save(update_fields=["spend_cap"])
        audit_record(
            actor=actor,
            action="subscription.spend_cap_set",
            organization=locked.organization,
            target=locked,
            changes={
                "spend_cap": [
                    None if old is None else str(old),
                    None if amount is None else str(amount),
                ]
            },
        )
    transaction.on_commit(lambda: spend_cap_check(subscription=locked))
    return locked


def spend_cap_check(*, subscription: Subscription, now: datetime | None = None) -> bool:
    """Raises or clears the gate's `spend_cap_reached` flag; True when the cap is reached.

    The period's bill so far is the same quote as the preview's (to date)."""
    client = get_redis()
    if subscription.spend_cap is None:
        flag_clear(client, subscription.organization_id, SPEND_CAP_REACHED)
        return False
    total = subscription_preview(subscription=subscription, now=now).to_date.total
    reached = total >= subscription.spend_cap
    if reached:
        flag_set(
            client, subscription.organization_id, SPEND_CAP_REACHED, seconds=SPEND_CAP_FLAG_SECONDS
        )
    else:
        flag_clear(client, subscription.organization_id, SPEND_CAP_REACHED)
    return reached
