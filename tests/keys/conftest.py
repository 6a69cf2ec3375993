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
