"""Every metering endpoint refuses missing, wrong-kind and under-scoped tokens."""

import pytest

from billing.models import Meter, UsageEvent
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory

# (method, path, token kinds allowed, scope that grants it, body)
BILLING_ENDPOINTS = [
    ("get", "/api/v1/meters", {"operator": "admin", "org": "usage:read"}, None),
    (
        "post",
        "/api/v1/meters",
        {"operator": "admin"},
        {"code": "x1", "name": "x", "unit": "x", "aggregation": "sum"},
    ),
    (
        "post",
        "/api/v1/usage/events",
        {"operator": "usage:write"},
        {"events": [{"id": "e", "meter": "requests", "customer": "acme"}]},
    ),
    (
        "post",
        "/api/v1/usage/corrections",
        {"operator": "usage:write"},
        {"event_id": "e", "customer": "acme", "reason": "x"},
    ),
    ("get", "/api/v1/usage", {"operator": "usage:write", "org": "usage:read"}, None),
    ("get", "/api/v1/usage/export.csv", {"operator": "usage:write", "org": "usage:read"}, None),
]
IDS = [f"{method.upper()} {path}" for method, path, _kinds, _body in BILLING_ENDPOINTS]


def call(client, method, path, body):
    query = {"meter": "requests", "customer": "acme"} if method == "get" else None
    if method == "get":
        return client.get(path, query)
    return client.post(path, body, format="json")


def stored():
    return Meter.objects.count(), UsageEvent.objects.count()


@pytest.mark.parametrize(("method", "path", "kinds", "body"), BILLING_ENDPOINTS, ids=IDS)
def test_no_token_is_401(anonymous_api, org, meters, method, path, kinds, body):
    before = stored()
    response = call(anonymous_api, method, path, body)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert stored() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), BILLING_ENDPOINTS, ids=IDS)
def test_wrong_kind_or_missing_scope_is_403(org, meters, method, path, kinds, body):
    before = stored()
    for kind in ("org", "operator"):
        if kind in kinds:
            other_scopes = ["keys:read"] if kind == "org" else ["gate:verify"]
            token = ApiTokenFactory(
                kind=kind, organization=org if kind == "org" else None, scopes=other_scopes
            )
            expected = "insufficient_scope"
        else:
            token = ApiTokenFactory(kind=kind, organization=org if kind == "org" else None)
            expected = "wrong_token_kind"
        response = call(bearer_client(token), method, path, body)
        assert response.status_code == 403, (kind, response.content)
        assert response.json()["code"] == expected
    assert stored() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), BILLING_ENDPOINTS, ids=IDS)
def test_the_granting_scope_lets_the_call_through(org, meters, method, path, kinds, body):
    for kind, scope in kinds.items():
        token = ApiTokenFactory(
            kind=kind, organization=org if kind == "org" else None, scopes=[scope]
        )
        response = call(bearer_client(token), method, path, body)
        assert response.status_code not in (401, 403), (kind, response.content)
