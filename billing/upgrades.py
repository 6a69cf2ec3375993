"""Upgrade triggers (PRICE-8): quotas nearly or fully used, features the plan lacks, and
which public plan would fix each, with the difference in base fee.

Reads only: the portal shows these as prompts (billing/templatetags/billing_tags.py), and
choosing the suggested plan goes through the usual confirmation and
billing.subscriptions.subscription_subscribe.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from billing import entitlements
from billing.models import Meter, Plan, PlanVersion
from billing.pricing.money import ZERO
from billing.selectors import UsageFilter, usage_aggregate
from billing.subscriptions import public_plans, subscription_current
from portal.models import Organization

WARNING_SHARE = Decimal("0.8")  # prompt at 80% of a quota...
FULL_SHARE = Decimal(1)  # ...and again, more urgently, at 100%
# The features the billing page offers upgrades for, in the order it lists them.
PROMPTED_FEATURES = {
    "webhooks": "Webhooks",
    "analytics": "Usage analytics",
    "sso": "Single sign-on (SSO)",
    "audit_log_export": "Audit log export",
}


@dataclass(frozen=True)
class PlanOffer:
    """A plan to move to, and what its base fee adds to (or takes from) the current one."""

    plan: Plan
    version: PlanVersion
    base_fee_difference: Decimal

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def interval(self) -> str:
        return self.plan.interval


@dataclass(frozen=True)
class QuotaPrompt:
    meter: Meter
    used: Decimal
    limit: Decimal
    behaviour: str  # "hard": calls are refused at the limit; "soft": allowed and alerted
    level: int  # 80 or 100
    period_end: datetime
    offer: PlanOffer | None  # None: no bigger public plan raises this quota
    offer_limit: Decimal | None  # the offered plan's quota; None when it has none

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 100
        return int(self.used * 100 / self.limit)


@dataclass(frozen=True)
class FeaturePrompt:
    feature: str
    label: str
    offer: PlanOffer


@dataclass(frozen=True)
class _Current:
    plan: Plan | None
    version: PlanVersion | None

    @property
    def rank(self) -> int:
        return self.plan.tier_rank if self.plan else -1

    @property
    def base_fee(self) -> Decimal:
        return self.version.base_fee if self.version else ZERO


def _current(granted: dict) -> _Current:
    if granted.get("plan") is None:
        return _Current(None, None)
    version = (
        PlanVersion.objects.filter(plan__code=granted["plan"], number=granted["version"])
        .select_related("plan")
        .first()
    )
    return _Current(version.plan if version else None, version)


def _offers(current: _Current) -> list[tuple[Plan, PlanVersion]]:
    """Public plans other than the current one, in the current currency, by tier rank."""
    offers = []
    for plan in public_plans():
        version = plan.current_version()
        if version is None or (current.plan is not None and plan.id == current.plan.id):
            continue
        if current.plan is not None and plan.currency != current.plan.currency:
            continue
        offers.append((plan, version))
    return offers


def _offer(current: _Current, plan: Plan, version: PlanVersion) -> PlanOffer:
    return PlanOffer(
        plan=plan, version=version, base_fee_difference=version.base_fee - current.base_fee
    )


def calendar_month(now: datetime) -> tuple[datetime, datetime]:
    """The usage period of an organization without a subscription (UTC month)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


def quota_period(organization: Organization, now: datetime) -> tuple[datetime, datetime]:
    subscription = subscription_current(organization=organization)
    if subscription is None:
        return calendar_month(now)
    return subscription.current_period_start, subscription.current_period_end


def _quota_limit(version: PlanVersion, meter_code: str) -> Decimal | None:
    for quota in version.entitlements.get("quotas", []):
        if quota.get("meter") == meter_code:
            return Decimal(quota["limit"])
    return None


def upgrade_prompts(organization: Organization, now: datetime | None = None) -> list[QuotaPrompt]:
    """A prompt per quota used to 80% or more this period (live usage, pooled over projects)."""
    now = now or timezone.now()
    granted = entitlements.entitlements_for(organization.id)
    quotas = granted.get("quotas") or []
    if not quotas:
        return []
    meters = {
        meter.code: meter for meter in Meter.objects.filter(code__in=[q["meter"] for q in quotas])
    }
    start, end = quota_period(organization, now)
    if now <= start:
        return []
    current = _current(granted)
    bigger = [
        (plan, version) for plan, version in _offers(current) if plan.tier_rank > current.rank
    ]
    prompts = []
    for quota in quotas:
        meter = meters.get(quota["meter"])
        if meter is None:
            continue
        limit = Decimal(quota["limit"])
        [total] = usage_aggregate(
            UsageFilter(organization_id=organization.id, meter=meter, start=start, end=now)
        )
        used = total["quantity"] or ZERO
        if used >= limit * FULL_SHARE:
            level = 100
        elif used >= limit * WARNING_SHARE:
            level = 80
        else:
            continue
        offer, offer_limit = None, None
        for plan, version in bigger:
            candidate_limit = _quota_limit(version, meter.code)
            if candidate_limit is None or candidate_limit > limit:
                offer, offer_limit = _offer(current, plan, version), candidate_limit
                break
        prompts.append(
            QuotaPrompt(
                meter=meter,
                used=used,
                limit=limit,
                behaviour=quota.get("behaviour", "hard"),
                level=level,
                period_end=end,
                offer=offer,
                offer_limit=offer_limit,
            )
        )
    return prompts


def feature_upgrade(organization: Organization, feature: str) -> PlanOffer | None:
    """The cheapest public plan that includes `feature`; None if the org already has it or
    no public plan offers it."""
    granted = entitlements.entitlements_for(organization.id)
    if granted.get("features", {}).get(feature):
        return None
    return _cheapest_with(_current(granted), feature)


def _cheapest_with(current: _Current, feature: str) -> PlanOffer | None:
    having = [
        (version.base_fee, plan.tier_rank, plan, version)
        for plan, version in _offers(current)
        if version.entitlements.get("features", {}).get(feature) is True
    ]
    if not having:
        return None
    _fee, _rank, plan, version = min(having, key=lambda item: (item[0], item[1]))
    return _offer(current, plan, version)


def feature_prompts(organization: Organization) -> list[FeaturePrompt]:
    """One prompt per PROMPTED_FEATURES entry the organization's plan lacks."""
    granted = entitlements.entitlements_for(organization.id)
    current = _current(granted)
    prompts = []
    for feature, label in PROMPTED_FEATURES.items():
        if granted.get("features", {}).get(feature):
            continue
        offer = _cheapest_with(current, feature)
        if offer is not None:
            prompts.append(FeaturePrompt(feature=feature, label=label, offer=offer))
    return prompts
