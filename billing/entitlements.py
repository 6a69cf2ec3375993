"""What an organization is entitled to right now: its plan version's entitlements plus
add-ons, or the Free plan's when it has no subscription.

The gate asks this on its path, so the answer is cached per organization and dropped when
a subscription or add-on changes (after commit). Phase changes that happen by the clock
(a scheduled migration) are picked up within CACHE_SECONDS.
"""

from copy import deepcopy
from decimal import Decimal

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Plan, PlanVersion, Subscription, SubscriptionAddOn, SubscriptionPhase
from billing.profiles import billing_zone

CACHE_SECONDS = 60
FREE_PLAN_CODE = "free"
# Entitled to when there is neither a subscription nor a Free plan in the catalog.
FALLBACK = {
    "plan": None,
    "version": None,
    "rate_limits": [],
    "quotas": [],
    "scopes": ["read"],
    "endpoint_groups": ["read"],
    "features": {},
    "retention_days": None,
    "support_level": "community",
    "billing_anchor": None,  # without a subscription, periods are calendar months (UTC)
    "interval": "month",
    "billing_zone": "UTC",
    "calendar_billing": False,
}


def _cache_key(organization_id) -> str:
    return f"entitlements:{organization_id}"


def invalidate(organization_id) -> None:
    transaction.on_commit(lambda: cache.delete(_cache_key(organization_id)))


def _version_in_force(organization_id, now) -> tuple[PlanVersion | None, Subscription | None]:
    phase = (
        SubscriptionPhase.objects.filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now),
            subscription__organization_id=organization_id,
            starts_at__lte=now,
        )
        .exclude(subscription__status=Subscription.Status.CANCELED)
        .select_related("plan_version__plan", "subscription")
        .first()
    )
    if phase is not None:
        return phase.plan_version, phase.subscription
    free = Plan.objects.filter(code=FREE_PLAN_CODE).first()
    return (free.current_version() if free else None), None


def _merge_addon(result: dict, addon_entitlements: dict, quantity: int) -> None:
    for quota in addon_entitlements.get("quotas", []):
        extra = Decimal(quota["limit"]) * quantity
        for existing in result["quotas"]:
            if existing["meter"] == quota["meter"]:
                existing["limit"] = str(Decimal(existing["limit"]) + extra)
                break
        else:
            result["quotas"].append(
                {
                    "meter": quota["meter"],
                    "limit": str(extra),
                    "behaviour": quota.get("behaviour", "hard"),
                }
            )
    for limit in addon_entitlements.get("rate_limits", []):
        result["rate_limits"].append(dict(limit))
    if addon_entitlements.get("retention_days"):
        result["retention_days"] = max(
            result["retention_days"] or 0, addon_entitlements["retention_days"]
        )
    if addon_entitlements.get("support_level"):
        result["support_level"] = addon_entitlements["support_level"]
    result["features"].update(addon_entitlements.get("features", {}))


def _compute(organization_id) -> dict:
    now = timezone.now()
    version, subscription = _version_in_force(organization_id, now)
    if version is None:
        return deepcopy(FALLBACK)
    result = {
        **deepcopy(FALLBACK),
        **deepcopy(version.entitlements),
        "plan": version.plan.code,
        "version": version.number,
    }
    if subscription is not None:
        # The gate works out the current period from these without a query (quotas).
        result["billing_anchor"] = subscription.started_at
        result["interval"] = version.plan.interval
        result["billing_zone"] = billing_zone(organization_id)
        result["calendar_billing"] = version.plan.calendar_billing
        items = SubscriptionAddOn.objects.filter(
            subscription=subscription, removed_at__isnull=True
        ).select_related("addon")
        for item in items:
            _merge_addon(result, item.addon.entitlements, item.quantity)
        result["addons"] = sorted(item.addon.code for item in items)
    return result


def entitlements_for(organization_id) -> dict:
    """A fresh dict each call (callers may not mutate the cached one)."""
    key = _cache_key(organization_id)
    found = cache.get(key)
    if found is None:
        found = _compute(organization_id)
        cache.set(key, found, CACHE_SECONDS)
    return deepcopy(found)
