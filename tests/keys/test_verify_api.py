"""POST /api/v1/verify: the decision over HTTP, headers, bad input, and the hot path."""

import pytest
from django.utils import timezone

from keys.models import Endpoint
from tests.conftest import bearer_client
from tests.factories import ApiKeyFactory, ApiTokenFactory, ProjectFactory
from tests.keys.conftest import on_hourly_limit

URL = "/api/v1/verify"


@pytest.fixture
def verifier(gate):
    """An operator token with gate:verify, over the demo catalog and the documents API."""
    return bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])
    )


@pytest.fixture
def key(org):
    return ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="test", scopes=["read", "write"]
    )


def verify(client, key, method="GET", path="/v1/documents/7", **extra):
    raw = key if isinstance(key, str) else key.raw_key
    return client.post(URL, {"key": raw, "method": method, "path": path, **extra}, format="json")


def test_an_allowed_call_answers_the_decision_and_rate_limit_headers(verifier, key, org):
    response = verify(verifier, key)
    assert response.status_code == 200
    body = response.json()
    assert body["allowed"] is True and body["code"] == "ok"
    assert body["customer"] == org.slug and body["environment"] == "test"
    assert body["key_id"] == str(key.id) and body["project_id"] == str(key.project_id)
    assert body["plan"] == "free" and body["scopes"] == ["read", "write"]
    assert body["endpoint"]["operation_id"] == "getDocument"
    assert body["ratelimit"] == {"limit": 5, "remaining": 4, "reset": body["ratelimit"]["reset"]}
    assert body["request_id"] == response["X-Request-Id"]
    assert response["RateLimit-Policy"] == "5;w=1, 100;w=60"
    assert response["RateLimit"].startswith("limit=5, remaining=4, reset=")


def test_a_denied_call_is_still_200_with_its_code(verifier, key):
    body = verify(verifier, key, path="/v1/unknown").json()
    assert (body["allowed"], body["code"], body["endpoint"]) == (False, "endpoint_unknown", None)
    body = verify(verifier, "tg_live_nonsense").json()
    assert body["code"] == "key_malformed" and body["key_id"] is None


def test_rate_limited_calls_carry_retry_after(verifier, key, org):
    on_hourly_limit(org)
    codes = [verify(verifier, key).json()["code"] for _ in range(5)]
    assert codes == ["ok"] * 5
    denied = verify(verifier, key)
    assert denied.json()["code"] == "rate_limited"
    assert int(denied["Retry-After"]) >= 1


def test_deprecated_endpoints_carry_deprecation_and_sunset(verifier, key):
    Endpoint.objects.filter(operation_id="getDocument").update(
        deprecated=True, sunset_at=timezone.now() + timezone.timedelta(days=90)
    )
    response = verify(verifier, key)
    assert response["Deprecation"] == "true"
    assert response["Sunset"].endswith("GMT")
    assert response.json()["deprecation"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "GET", "path": "/v1/documents"}, "key"),
        ({"key": "x", "path": "/v1/documents"}, "method"),
        ({"key": "x", "method": "FETCH", "path": "/v1/documents"}, "method"),
        ({"key": "x", "method": "GET"}, "path"),
        ({"key": "x", "method": "GET", "path": "v1/documents"}, "path"),
        ({"key": "x", "method": "GET", "path": "/v1", "ip": "not-an-ip"}, "ip"),
        ({"key": "x", "method": "GET", "path": "/v1", "cost": 0}, "cost"),
        ({"key": "x", "method": "GET", "path": "/v1", "cost": "1"}, "cost"),
        ({"key": "x", "method": "GET", "path": "/v1", "product": ""}, "product"),
    ],
)
def test_bad_input_is_a_problem(verifier, body, field):
    response = verifier.post(URL, body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_verify_needs_an_operator_token_with_gate_verify(api, db, anonymous_api, key):
    body = {"key": key.raw_key, "method": "GET", "path": "/v1/documents/1"}
    assert anonymous_api.post(URL, body, format="json").status_code == 401
    assert api.post(URL, body, format="json").json()["code"] == "wrong_token_kind"
    usage_only = bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["usage:write"])
    )
    assert usage_only.post(URL, body, format="json").json()["code"] == "insufficient_scope"


def test_a_warm_verify_runs_no_database_query(verifier, key, django_assert_num_queries, settings):
    settings.GATE_DRAIN_INLINE = False  # as in production: workers drain usage, not verify
    verify(verifier, key)  # warms the token, key, catalog and entitlements caches
    from keys.gate_api import process_gate

    process_gate().catalog._refresh_seconds = 60
    verify(verifier, key)
    with django_assert_num_queries(0):
        assert verify(verifier, key).json()["allowed"]


def test_verify_answers_with_and_without_a_trailing_slash(verifier, key):
    assert (
        verifier.post(
            URL + "/",
            {"key": key.raw_key, "method": "GET", "path": "/v1/documents/1"},
            format="json",
        ).json()["code"]
        == "ok"
    )


def test_without_workers_the_usage_is_in_the_ledger_right_after_the_answer(verifier, key, settings):
    from billing.models import UsageEvent

    settings.GATE_DRAIN_INLINE = True  # the embedded default: no beat to drain the stream
    response = verify(verifier, key)
    assert response.json()["allowed"]
    row = UsageEvent.objects.get(event_id=response["X-Request-Id"])
    assert (row.meter.code, row.source, row.environment) == ("requests", "gate", "test")
