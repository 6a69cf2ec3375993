"""Fixtures for the gate's tests: a gate on real Redis over the demo catalog."""

import pytest
from django.core.cache import cache as django_cache

from billing.demo_catalog import ensure_demo_catalog
from common.orgflags import FlagCache
from common.redis import get_redis
from keys.blocklist import BlockList
from keys.gate import EndpointCatalog, Gate, VerifyInput
from keys.keycache import KeyCache
from keys.quota import QuotaCounter
from keys.ratelimit import RateLimiter
from keys.services import api_version_create
from portal.audit import Actor
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.keys.test_products import DOCUMENT

SYSTEM = Actor.system("test")


class NoRedis:
    """Any Redis call fails the test: for checks that must decide without Redis."""

    def __getattr__(self, name):
        raise AssertionError(f"Redis was used ({name})")


@pytest.fixture
def gate(db, meters):
    django_cache.clear()
    ensure_demo_catalog(actor=SYSTEM)
    api_version_create(actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT)
    return make_gate()


def make_gate(keys=None):
    client = get_redis()
    return Gate(
        keys=keys or KeyCache(client, check_interval=0),
        limiter=RateLimiter(client),
        catalog=EndpointCatalog(refresh_seconds=0),
        quotas=QuotaCounter(client),
        redis_client=client,
        entitlements_seconds=0,  # tests change plans and look at once
        blocks=BlockList(client, check_interval=0),
        flags=FlagCache(client, seconds=0),
    )


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org)


def key_for(project, scopes=("read", "write", "bulk"), **extra):
    return ApiKeyFactory(project=project, scopes=list(scopes), **extra)


def call(gate, key, method="GET", path="/v1/documents/1", **extra):
    raw = key if isinstance(key, str) else key.raw_key
    return gate.decide(VerifyInput(key=raw, method=method, path=path, **extra))


def on_hourly_limit(organization, limit: int = 5) -> None:
    """Puts the org on a plan whose only rate limit is `limit` calls an hour, so a test of
    the limit does not depend on how fast this machine makes its calls (Free's 5 per
    second refills while a loaded machine is between two of them)."""
    from django.core.cache import cache

    from billing.catalog import plan_create
    from billing.demo_catalog import DEMO_PLANS
    from billing.models import Plan
    from billing.subscriptions import subscription_subscribe

    code = f"hourly-{limit}"
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        free = next(body for body in DEMO_PLANS if body["code"] == "free")
        entitlements = {
            **free["entitlements"],
            "rate_limits": [{"limit": limit, "window_seconds": 3600}],
        }
        body = {**free, "code": code, "name": f"{limit} an hour", "tier_rank": 1}
        plan = plan_create(actor=SYSTEM, body={**body, "entitlements": entitlements})
    subscription_subscribe(actor=SYSTEM, organization=organization, plan=plan)
    cache.clear()  # entitlements are cached per org
