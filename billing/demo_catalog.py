"""The demo catalog: Free, Pro, Business and Enterprise, add-ons and a coupon.

Written in the same body format as `POST /api/v1/plans`, so it doubles as an example for
operators (docs/pricing.md).
"""

from decimal import Decimal

from billing.catalog import plan_create
from billing.models import AddOn, Coupon, Plan
from portal.audit import Actor

DEMO_PLANS = [
    {
        "code": "free",
        "name": "Free",
        "tier_rank": 0,
        "currency": "USD",
        "interval": "month",
        "description": "Sandbox and side projects: core read endpoints, community support.",
        "base_fee": "0",
        "charges": [],
        "entitlements": {
            "rate_limits": [
                {"limit": 5, "window_seconds": 1},
                {"limit": 100, "window_seconds": 60},
            ],
            "quotas": [{"meter": "requests", "limit": "10000", "behaviour": "hard"}],
            "scopes": ["read"],
            "endpoint_groups": ["read"],
            "features": {
                "webhooks": False,
                "analytics": False,
                "sso": False,
                "audit_log_export": False,
            },
            "retention_days": 7,
            "support_level": "community",
        },
    },
    {
        "code": "pro",
        "name": "Pro",
        "tier_rank": 10,
        "currency": "USD",
        "interval": "month",
        "trial_days": 14,
        "description": "Production apps: higher quotas, webhooks and analytics.",
        "base_fee": "49.00",
        "charges": [
            {
                "meter": "requests",
                "model": "graduated",
                "free_units": "10000",
                "tiers": [
                    {"up_to": "1000000", "unit_amount": "0.0004", "flat_amount": "0"},
                    {"up_to": None, "unit_amount": "0.0002"},
                ],
            },
            {
                "meter": "records_processed",
                "model": "package",
                "package_size": "1000",
                "package_amount": "2.50",
            },
            {
                "meter": "gpu_seconds",
                "model": "per_unit",
                "unit_amount": "0.0011",
                "minimum": "0",
                "maximum": "5000",
            },
        ],
        "entitlements": {
            "rate_limits": [
                {"limit": 50, "window_seconds": 1},
                {"limit": 2000, "window_seconds": 60},
            ],
            "quotas": [{"meter": "requests", "limit": "5000000", "behaviour": "soft"}],
            "scopes": ["read", "write"],
            "endpoint_groups": ["read", "write", "bulk"],
            "features": {
                "webhooks": True,
                "analytics": True,
                "sso": False,
                "audit_log_export": False,
            },
            "retention_days": 90,
            "support_level": "email",
        },
    },
    {
        "code": "business",
        "name": "Business",
        "tier_rank": 20,
        "currency": "USD",
        "interval": "month",
        "trial_days": 14,
        "description": "Teams at scale: SSO, audit log export, dedicated support, custom limits.",
        "base_fee": "499.00",
        "charges": [
            {
                "meter": "requests",
                "model": "graduated",
                "free_units": "100000",
                "tiers": [
                    {"up_to": "10000000", "unit_amount": "0.0003"},
                    {"up_to": None, "unit_amount": "0.00015"},
                ],
            },
            {
                "meter": "records_processed",
                "model": "volume",
                "tiers": [
                    {"up_to": "1000000", "unit_amount": "0.002"},
                    {"up_to": "10000000", "unit_amount": "0.0015"},
                    {"up_to": None, "unit_amount": "0.001"},
                ],
            },
            {"meter": "gpu_seconds", "model": "per_unit", "unit_amount": "0.0009"},
        ],
        "entitlements": {
            "rate_limits": [
                {"limit": 200, "window_seconds": 1},
                {"limit": 10000, "window_seconds": 60},
            ],
            "quotas": [{"meter": "requests", "limit": "50000000", "behaviour": "soft"}],
            "scopes": ["read", "write", "admin"],
            "endpoint_groups": ["read", "write", "bulk", "webhooks", "admin"],
            "features": {
                "webhooks": True,
                "analytics": True,
                "sso": True,
                "audit_log_export": True,
            },
            "retention_days": 365,
            "support_level": "dedicated",
        },
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "tier_rank": 30,
        "currency": "USD",
        "interval": "month",
        "public": False,
        "description": "Contract pricing: committed spend with a usage discount.",
        "base_fee": "2500.00",
        "minimum_commitment": "5000.00",
        "commitment_discount_percent": "20",
        "charges": [
            {"meter": "requests", "model": "per_unit", "unit_amount": "0.0001"},
            {"meter": "records_processed", "model": "per_unit", "unit_amount": "0.001"},
            {"meter": "gpu_seconds", "model": "per_unit", "unit_amount": "0.0008"},
        ],
        "entitlements": {
            "rate_limits": [{"limit": 1000, "window_seconds": 1}],
            "quotas": [],
            "scopes": ["read", "write", "admin"],
            "endpoint_groups": ["read", "write", "bulk", "webhooks", "admin"],
            "features": {
                "webhooks": True,
                "analytics": True,
                "sso": True,
                "audit_log_export": True,
            },
            "retention_days": 730,
            "support_level": "dedicated-24x7",
        },
    },
]

DEMO_ADDONS = [
    (
        "dedicated-throughput",
        "Dedicated throughput pool",
        "199.00",
        {"rate_limits": [{"limit": 500, "window_seconds": 1, "burst": 500, "scope": "org"}]},
    ),
    ("extended-retention", "Two-year data retention", "49.00", {"retention_days": 730}),
    ("priority-support", "Priority support", "99.00", {"support_level": "priority"}),
    (
        "quota-pack-1m",
        "Extra 1M requests quota",
        "29.00",
        {"quotas": [{"meter": "requests", "limit": "1000000"}]},
    ),
]


def ensure_demo_catalog(*, actor: Actor) -> list[str]:
    """Creates whatever of the demo catalog is missing; returns what it created."""
    created = []
    for body in DEMO_PLANS:
        if not Plan.objects.filter(code=body["code"]).exists():
            plan_create(actor=actor, body=body)
            created.append(f"plan {body['code']}")
    for code, name, price, entitlements in DEMO_ADDONS:
        _addon, made = AddOn.objects.get_or_create(
            code=code,
            defaults={"name": name, "price": Decimal(price), "entitlements": entitlements},
        )
        if made:
            created.append(f"add-on {code}")
    _coupon, made = Coupon.objects.get_or_create(
        code="launch20",
        defaults={
            "name": "Launch: 20% off for 3 months",
            "kind": "percent",
            "percent_off": Decimal(20),
            "duration_periods": 3,
        },
    )
    if made:
        created.append("coupon launch20")
    return created
