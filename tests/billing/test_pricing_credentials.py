"""Pricing endpoints: which token kinds and scopes may call each, and the public ones."""

import pytest

from billing.demo_catalog import ensure_demo_catalog
from billing.models import Plan, Subscription
from portal.audit import Actor
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory

# (method, path, {token kind: granting scope}, body)
PRICING_ENDPOINTS = [
    ("post", "/api/v1/plans/{plan}/versions", {"operator": "admin"}, {"base_fee": "1"}),
    (
        "post",
        "/api/v1/subscriptions",
        {"org": "billing:write", "operator": "admin"},
        {"plan": "pro", "customer": "acme"},
    ),
    ("get", "/api/v1/subscriptions/current", {"org": "billing:read", "operator": "admin"}, None),
    (
        "get",
        "/api/v1/subscriptions/current/preview",
        {"org": "billing:read", "operator": "admin"},
        None,
    ),
    (
        "post",
        "/api/v1/subscriptions/current/preview-change",
        {"org": "billing:read", "operator": "admin"},
        {"plan": "business", "customer": "acme"},
    ),
    (
        "post",
        "/api/v1/subscriptions/current/cancel",
        {"org": "billing:write", "operator": "admin"},
        {"customer": "acme"},
    ),
    (
        "post",
        "/api/v1/subscriptions/current/addons",
        {"org": "billing:write", "operator": "admin"},
        {"addon": "priority-support", "customer": "acme"},
    ),
    (
        "post",
        "/api/v1/estimates",
        {"org": "billing:read", "operator": "admin"},
        {"meter": "requests", "quantity": "1000", "customer": "acme"},
    ),
]
# Anyone may call these; POST /api/v1/plans (same path) needs an operator admin token.
PUBLIC_PRICING_PATHS = {"/api/v1/plans", "/api/v1/pricing/quote"}
IDS = [f"{method.upper()} {path}" for method, path, _kinds, _body in PRICING_ENDPOINTS]


@pytest.fixture
def catalog(org, meters):
    from billing.subscriptions import subscription_subscribe

    ensure_demo_catalog(actor=Actor.system("test"))
    subscription_subscribe(
        actor=Actor.system("test"), organization=org, plan=Plan.objects.get(code="pro")
    )


def call(client, method, path, body):
    path = path.replace("{plan}", "pro")
    if method == "get":
        return client.get(path, {"customer": "acme"})
    return client.post(path, body, format="json")


def token_for(kind, org, scopes):
    return ApiTokenFactory(kind=kind, organization=org if kind == "org" else None, scopes=scopes)


@pytest.mark.parametrize(("method", "path", "kinds", "body"), PRICING_ENDPOINTS, ids=IDS)
def test_no_token_is_401(anonymous_api, catalog, method, path, kinds, body):
    response = call(anonymous_api, method, path, body)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


@pytest.mark.parametrize(("method", "path", "kinds", "body"), PRICING_ENDPOINTS, ids=IDS)
def test_wrong_kind_or_missing_scope_is_403(org, catalog, method, path, kinds, body):
    before = list(Subscription.objects.values_list("id", "cancel_at_period_end"))
    for kind in ("org", "operator"):
        if kind in kinds:
            scopes = ["keys:read"] if kind == "org" else ["gate:verify"]
            expected = "insufficient_scope"
        else:
            scopes = ["billing:write", "billing:read"] if kind == "org" else ["admin"]
            expected = "wrong_token_kind"
        response = call(bearer_client(token_for(kind, org, scopes)), method, path, body)
        assert response.status_code == 403, (kind, response.content)
        assert response.json()["code"] == expected
    assert list(Subscription.objects.values_list("id", "cancel_at_period_end")) == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), PRICING_ENDPOINTS, ids=IDS)
def test_the_granting_scope_lets_the_call_through(org, catalog, method, path, kinds, body):
    for kind, scope in kinds.items():
        if path == "/api/v1/subscriptions":
            # Each call changes the plan, so each asks for one the org is not on yet.
            body = {**body, "plan": "business" if kind == "org" else "pro"}
        response = call(bearer_client(token_for(kind, org, [scope])), method, path, body)
        assert response.status_code in (200, 201), (kind, response.content)


def test_public_endpoints_need_no_token(anonymous_api, catalog):
    assert anonymous_api.get("/api/v1/plans").status_code == 200
    quote = anonymous_api.post("/api/v1/pricing/quote", {"plan": "pro"}, format="json")
    assert quote.status_code == 200, quote.content


def test_creating_a_plan_needs_an_operator_admin_token(anonymous_api, org, catalog):
    body = {"code": "x", "name": "X", "currency": "USD"}
    assert anonymous_api.post("/api/v1/plans", body, format="json").status_code == 401
    for kind, scopes in (("org", ["billing:write"]), ("operator", ["usage:write"])):
        response = bearer_client(token_for(kind, org, scopes)).post(
            "/api/v1/plans", body, format="json"
        )
        assert response.status_code == 403
    assert not Plan.objects.filter(code="x").exists()
