"""Quotas at the gate and metering of allowed calls through the Redis stream."""

from datetime import timedelta

import pytest
from django.core.cache import cache as django_cache
from django.utils import timezone

from billing.entitlements import entitlements_for
from billing.ingest import usage_ingest
from billing.models import Meter, Plan, UsageEvent
from billing.selectors import UsageFilter, usage_aggregate
from billing.subscriptions import subscription_subscribe
from common.redis import get_redis
from keys.gate import current_period
from keys.gate_usage import CROSSINGS_KEY, GROUP, REGISTRY_KEY, _ensure_group, drain, stream_key
from keys.quota import quota_key
from keys.tasks import drain_gate_usage
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.keys.conftest import SYSTEM, call

FREE_QUOTA = 10_000  # Free plan: 10,000 requests a month, hard


@pytest.fixture(autouse=True)
def empty_streams():
    client = get_redis()
    client.delete(CROSSINGS_KEY, REGISTRY_KEY, *client.scan_iter("tg:gate:usage:*"))
    import keys.gate_usage

    keys.gate_usage._registered.clear()  # the registry was emptied: register again


@pytest.fixture
def live_key(org):
    return ApiKeyFactory(
        project=ProjectFactory(organization=org),
        environment="live",
        scopes=["read", "write", "bulk"],
    )


def requests_used(org, environment="live"):

    now = timezone.now()
    [total] = usage_aggregate(
        UsageFilter(
            organization_id=org.id,
            meter=Meter.objects.get(code="requests"),
            start=now - timedelta(days=40),
            end=now,
            environment=environment,
        )
    )
    return total["quantity"]


def fill_ledger(org, count):
    for start in range(0, count, 1000):
        usage_ingest(
            events=[
                {"id": f"old-{n}", "meter": "requests", "customer": org.slug}
                for n in range(start, min(start + 1000, count))
            ]
        )


def test_a_hard_quota_denies_exactly_at_the_limit(gate, org, live_key):
    fill_ledger(org, FREE_QUOTA - 2)  # the counter is rebuilt from the ledger
    assert call(gate, live_key, cost=1).allowed
    assert call(gate, live_key, cost=1).allowed
    denied = call(gate, live_key, cost=1)
    assert denied.code == "quota_exhausted"
    assert denied.quota.denied_by.remaining == 0


def test_a_call_costing_more_than_what_is_left_is_denied_and_charges_nothing(
    gate,
    org,
    live_key,
):
    fill_ledger(org, FREE_QUOTA - 3)
    assert call(gate, live_key, cost=5).code == "quota_exhausted"
    assert call(gate, live_key, cost=3).allowed  # the denied 5 used nothing


def test_test_keys_are_never_charged_against_live_quotas(gate, org):
    fill_ledger(org, FREE_QUOTA)
    test_key = ApiKeyFactory(project=ProjectFactory(organization=org), environment="test")
    assert call(gate, test_key).allowed


def test_the_counter_is_rebuilt_from_the_ledger_after_redis_loses_it(
    gate,
    org,
    live_key,
):
    fill_ledger(org, FREE_QUOTA - 1)
    assert call(gate, live_key).allowed
    client = get_redis()
    for key in client.scan_iter(f"tg:quota:{{{org.id}}}:*"):
        client.delete(key)  # as if Redis were flushed
    drain(client, lambda events: usage_ingest(events=events, source="gate"))
    assert call(gate, live_key).code == "quota_exhausted"  # 10,000 in the ledger


def test_a_soft_quota_allows_and_records_the_crossing_once(
    gate,
    org,
    live_key,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_subscribe(actor=SYSTEM, organization=org, plan=Plan.objects.get(code="pro"))
    django_cache.clear()
    limit = 5_000_000  # Pro: soft
    client = get_redis()
    start, _end = current_period(entitlements_for(org.id), timezone.now())
    client.set(quota_key(org.id, "requests", start), limit - 1)  # one request short
    assert call(gate, live_key).allowed
    assert call(gate, live_key).allowed  # past the limit: allowed, soft
    crossings = client.xrange(CROSSINGS_KEY)
    assert len(crossings) == 1
    assert crossings[0][1][b"meter"] == b"requests"


def test_allowed_calls_reach_the_ledger_through_the_stream(gate, org, live_key):
    decisions = [call(gate, live_key, request_id=f"req-{n}-{org.slug}") for n in range(3)]
    assert all(d.allowed for d in decisions)
    assert requests_used(org) == 0  # not yet drained
    assert drain_gate_usage() == 3
    assert requests_used(org) == 3
    rows = UsageEvent.objects.filter(organization=org)
    assert {row.source for row in rows} == {"gate"}
    assert {row.endpoint for row in rows} == {"GET /documents/{id}"}
    assert drain_gate_usage() == 0  # acknowledged and deleted


def test_denied_calls_are_not_metered(gate, org, live_key):
    read_only = ApiKeyFactory(project=live_key.project, environment="live", scopes=["read"])
    call(gate, read_only, method="POST", path="/v1/documents")
    assert get_redis().xlen(stream_key(org.id)) == 0


def test_a_batch_read_by_a_worker_that_died_is_claimed_and_counted_once(
    gate, org, live_key, monkeypatch
):
    client = get_redis()
    call(gate, live_key, request_id=f"req-lost-{org.slug}")
    _ensure_group(client, stream_key(org.id))
    # A worker reads the entry, then dies before acknowledging it.
    client.xreadgroup(GROUP, "dead-worker", {stream_key(org.id): ">"}, count=10)
    assert drain(client, lambda events: usage_ingest(events=events, source="gate")) == 0
    # After the idle time another worker claims it; ingesting twice would still count once.
    monkeypatch.setattr("keys.gate_usage.CLAIM_IDLE_MS", 0)
    moved = drain(client, lambda events: usage_ingest(events=events, source="gate"))
    assert moved == 1
    assert requests_used(org) == 1


def test_test_key_calls_are_metered_as_test_usage(gate, org):
    # No quotas for sandbox traffic: the rate-limit script itself writes the usage.
    test_key = ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="test", scopes=["read"]
    )
    assert all(call(gate, test_key, request_id=f"t-{n}-{org.slug}").allowed for n in range(2))
    assert drain_gate_usage() == 2
    assert requests_used(org, environment="test") == 2
    assert requests_used(org) == 0


def test_a_plan_without_limits_still_meters_every_call(gate, org, live_key):
    from billing.catalog import plan_create

    plan = plan_create(
        actor=SYSTEM,
        body={
            "code": "open",
            "name": "Open",
            "base_fee": "0",
            "entitlements": {"scopes": ["read"], "endpoint_groups": ["read"]},
        },
    )
    subscription_subscribe(actor=SYSTEM, organization=org, plan=plan)
    django_cache.clear()
    assert call(gate, live_key, request_id=f"open-{org.slug}").allowed
    assert drain_gate_usage() == 1
    assert requests_used(org) == 1


def test_draining_records_when_each_key_was_last_used(gate, org, live_key):
    from keys.models import ApiKey

    assert ApiKey.objects.get(pk=live_key.pk).last_used_at is None
    decision = call(gate, live_key, request_id=f"used-{org.slug}")
    assert decision.allowed
    drain_gate_usage()
    last_used = ApiKey.objects.get(pk=live_key.pk).last_used_at
    assert last_used is not None
    assert abs((timezone.now() - last_used).total_seconds()) < 60
