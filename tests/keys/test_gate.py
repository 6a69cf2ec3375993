"""The gate's decision, check by check, in the issue's order."""

import copy
from datetime import timedelta

from django.utils import timezone

from billing.models import Plan
from billing.subscriptions import subscription_subscribe
from keys.gate import VerifyInput
from keys.keycache import KeyCache
from keys.services import api_version_create, key_revoke
from tests.keys.conftest import SYSTEM, NoRedis, call, key_for, make_gate
from tests.keys.test_products import DOCUMENT


def on_plan(org, code):
    subscription_subscribe(actor=SYSTEM, organization=org, plan=Plan.objects.get(code=code))


def test_a_well_formed_key_on_a_known_endpoint_is_allowed(gate, org, project):
    decision = call(gate, key_for(project))
    assert (decision.allowed, decision.code) == (True, "ok")
    assert decision.endpoint.operation_id == "getDocument"
    assert decision.entitlements["plan"] == "free"
    assert decision.ratelimit.binding.remaining == 4  # Free: 5 per second


def test_a_malformed_key_is_refused_without_database_or_redis(gate, django_assert_num_queries):
    no_redis_gate = make_gate(keys=KeyCache(NoRedis()))
    with django_assert_num_queries(0):
        assert call(no_redis_gate, "tg_test_" + "a" * 38).code == "key_malformed"
        assert call(no_redis_gate, "not a key").code == "key_malformed"


def test_unknown_revoked_and_expired_keys_are_refused(
    gate, project, django_capture_on_commit_callbacks
):
    from keys.format import key_generate

    assert call(gate, key_generate("test")).code == "key_invalid"  # well formed, unknown
    expired = key_for(project, expires_at=timezone.now() - timedelta(seconds=1))
    assert call(gate, expired).code == "key_expired"
    key = key_for(project)
    assert call(gate, key).allowed  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        key_revoke(actor=SYSTEM, key=key)
    assert call(gate, key).code == "key_revoked"


def test_ip_allow_list(gate, project):
    key = key_for(project, allowed_cidrs=["10.0.0.0/8"])
    assert call(gate, key, ip="10.1.2.3").allowed
    assert call(gate, key, ip="192.0.2.1").code == "ip_not_allowed"
    assert call(gate, key).code == "ip_not_allowed"


def test_unknown_sunset_and_ambiguous_endpoints(gate, project):
    key = key_for(project)
    assert call(gate, key, path="/v1/nothing").code == "endpoint_unknown"
    other = copy.deepcopy(DOCUMENT)
    other["info"]["title"] = "Mirror"
    api_version_create(actor=SYSTEM, product_code="mirror", version="v1", document=other)
    assert call(gate, key).code == "endpoint_ambiguous"
    assert call(gate, key, product="documents").allowed
    assert call(gate, key, product="mirror", version="v1").allowed
    from keys.models import Endpoint

    Endpoint.objects.filter(operation_id="getDocument").update(
        sunset_at=timezone.now() - timedelta(days=1)
    )
    assert call(gate, key, product="documents").code == "endpoint_sunset"


def test_a_version_past_its_sunset_answers_endpoint_sunset_not_unknown(gate, project):
    from keys.models import ApiVersion

    key = key_for(project)
    newer = copy.deepcopy(DOCUMENT)
    del newer["paths"]["/documents/{id}"]  # v2 dropped the single-document read
    api_version_create(actor=SYSTEM, product_code="documents", version="v2", document=newer)
    ApiVersion.objects.filter(product__code="documents", version="v1").update(
        sunset_at=timezone.now() - timedelta(minutes=1)
    )

    named = call(gate, key, product="documents", version="v1")
    assert (named.code, named.endpoint.path_template) == ("endpoint_sunset", "/documents/{id}")
    # Without a version: only in the sunset v1, so it is sunset, not unknown...
    assert call(gate, key).code == "endpoint_sunset"
    assert call(gate, key, product="documents").code == "endpoint_sunset"
    # ...while what v2 still has is matched in v2, and what neither has is unknown.
    listed = call(gate, key, path="/v1/documents")
    assert listed.allowed and listed.endpoint.api_version.version == "v2"
    assert call(gate, key, path="/v1/nothing").code == "endpoint_unknown"


def test_the_key_needs_the_endpoints_group_as_scope(gate, project):
    read_only = key_for(project, scopes=["read"])
    assert call(gate, read_only, method="POST", path="/v1/documents").code == "scope_missing"


def test_the_plan_must_include_the_group(gate, org, project, django_capture_on_commit_callbacks):
    key = key_for(project)
    bulk = {"method": "POST", "path": "/v1/documents/bulk"}
    assert call(gate, key, **bulk).code == "endpoint_not_in_plan"  # Free: read only
    with django_capture_on_commit_callbacks(execute=True):  # drops the cached entitlements
        on_plan(org, "pro")
    assert call(gate, key, **bulk).allowed


def test_rate_limits_deny_after_the_burst_and_denials_before_them_cost_nothing(gate, project):
    key = key_for(project, scopes=["read"])
    for _ in range(3):
        assert call(gate, key, method="POST", path="/v1/documents").code == "scope_missing"
    results = [call(gate, key).code for _ in range(6)]
    assert results == ["ok"] * 5 + ["rate_limited"]  # the 3 denials used none of the 5


def test_a_known_key_is_decided_without_a_query(gate, project, django_assert_num_queries):
    key = key_for(project)
    call(gate, key)
    gate.catalog._refresh_seconds = 60  # a warm catalog, as in production
    with django_assert_num_queries(0):
        assert call(gate, key).allowed


def test_a_rotated_key_works_until_its_grace_period_ends(
    gate, project, django_capture_on_commit_callbacks
):
    from keys.services import key_rotate

    key = key_for(project)
    assert call(gate, key).allowed  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        _new, raw = key_rotate(actor=SYSTEM, key=key, grace_period_seconds=30)
    assert call(gate, key).allowed
    assert call(gate, raw).allowed
    later = timezone.now() + timedelta(seconds=31)
    assert (
        gate.decide(
            VerifyInput(key=key.raw_key, method="GET", path="/v1/documents/1"), now=later
        ).code
        == "key_expired"
    )
