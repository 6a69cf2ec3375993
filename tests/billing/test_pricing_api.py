"""The pricing API: the quote's shape and amounts, plans as code, subscriptions, estimates;
every bad input is problem+json with a stable code and changes nothing; tenants stay apart."""

import pytest

from billing.demo_catalog import ensure_demo_catalog
from billing.models import (
    AddOn,
    Charge,
    Plan,
    PlanVersion,
    Subscription,
    SubscriptionAddOn,
    SubscriptionPhase,
)
from common.problems import PROBLEM_CONTENT_TYPE
from portal.audit import Actor
from portal.models import AuditLogEntry

QUOTE = "/api/v1/pricing/quote"
PLANS = "/api/v1/plans"
SUBSCRIPTIONS = "/api/v1/subscriptions"
CURRENT = "/api/v1/subscriptions/current"
ESTIMATES = "/api/v1/estimates"
QUOTE_KEYS = {"plan", "version", "currency", "lines", "subtotal", "discount", "credits", "tax"}
QUOTE_KEYS |= {"total"}
LINE_KEYS = {"kind", "meter", "quantity", "amount", "tiers"}
TIER_KEYS = {"from", "up_to", "quantity", "unit_amount", "flat_amount", "amount"}


def assert_problem(response, status: int, code: str) -> dict:
    """An RFC 9457 document with a stable code and the request id of its response."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response["X-Request-Id"]
    assert body["title"] and body["detail"]
    return body


def stored() -> dict:
    """Everything the pricing endpoints may write, to compare before and after a refusal."""
    return {
        "plans": sorted(Plan.objects.values_list("code", "name", "public")),
        "versions": sorted(PlanVersion.objects.values_list("plan__code", "number", "base_fee")),
        "charges": Charge.objects.count(),
        "subscriptions": sorted(
            Subscription.objects.values_list("organization__slug", "status", "cancel_at_period_end")
        ),
        "phases": sorted(
            SubscriptionPhase.objects.values_list("plan_version_id", "starts_at", "ends_at")
        ),
        "addons": SubscriptionAddOn.objects.count(),
        "audit": AuditLogEntry.objects.count(),
    }


@pytest.fixture
def catalog(meters):
    ensure_demo_catalog(actor=Actor.system("test"))


def quote(client, body):
    return client.post(QUOTE, body, format="json")


# --- The quote ------------------------------------------------------------------------------
def test_a_quote_has_the_documented_shape_and_amounts(anonymous_api, catalog):
    response = quote(
        anonymous_api,
        {
            "plan": "pro",
            "usage": {"requests": "1000000", "records_processed": 2500, "gpu_seconds": "0"},
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == QUOTE_KEYS
    assert (body["plan"], body["version"], body["currency"]) == ("pro", 1, "USD")
    for line in body["lines"]:
        assert set(line) >= LINE_KEYS
        for tier in line["tiers"]:
            assert set(tier) == TIER_KEYS
    summary = [
        (line["kind"], line["meter"], line["quantity"], line["amount"]) for line in body["lines"]
    ]
    assert summary == [
        ("base_fee", None, None, "49.00"),
        ("usage", "requests", "1000000", "396.00"),  # 10,000 free, 990,000 x 0.0004
        ("usage", "records_processed", "2500", "7.50"),  # 3 started packages x 2.50
        ("usage", "gpu_seconds", "0", "0.00"),
    ]
    requests = body["lines"][1]
    assert requests["tiers"] == [
        {
            "from": "0",
            "up_to": "1000000",
            "quantity": "990000",
            "unit_amount": "0.0004",
            "flat_amount": "0",
            "amount": "396",
        }
    ]
    assert body["lines"][0]["tiers"] == [] and body["lines"][3]["tiers"] == []
    assert (body["subtotal"], body["discount"], body["credits"], body["tax"], body["total"]) == (
        "452.50",
        "0.00",
        "0.00",
        "0.00",
        "452.50",
    )


@pytest.fixture
def currency_plans(admin_api, catalog):
    for code, currency, unit_amount in (
        ("usd-calls", "USD", "0.0855"),
        ("yen-calls", "JPY", "0.5"),
        ("dinar-calls", "BHD", "0.0015"),
    ):
        body = {
            "code": code,
            "name": code,
            "currency": currency,
            "charges": [{"meter": "requests", "model": "per_unit", "unit_amount": unit_amount}],
        }
        assert admin_api.post(PLANS, body, format="json").status_code == 201


@pytest.mark.parametrize(
    ("plan", "requests", "amount"),
    [
        ("usd-calls", "1000", "85.50"),  # two digits, always
        ("yen-calls", "4", "2"),  # no minor unit
        ("yen-calls", "5", "3"),  # 2.5 yen, half up
        ("dinar-calls", "1001", "1.502"),  # three digits: 1.5015 half up
        ("dinar-calls", "0", "0.000"),
    ],
)
def test_quote_amounts_have_exactly_the_currency_digits(
    anonymous_api, currency_plans, plan, requests, amount
):
    body = quote(anonymous_api, {"plan": plan, "usage": {"requests": requests}}).json()
    [line] = body["lines"]
    assert line["amount"] == body["subtotal"] == body["total"] == amount
    assert body["tax"] == body["discount"] == body["credits"] == format_zero(amount)


def format_zero(amount: str) -> str:
    return "0" if "." not in amount else "0." + "0" * len(amount.split(".")[1])


def test_a_quote_can_name_an_older_version(anonymous_api, admin_api, catalog):
    admin_api.post(f"{PLANS}/pro/versions", {"base_fee": "59.00"}, format="json")
    latest = quote(anonymous_api, {"plan": "pro"}).json()
    older = quote(anonymous_api, {"plan": "pro", "version": 1}).json()
    assert (latest["version"], latest["total"]) == (2, "59.00")
    assert (older["version"], older["total"]) == (1, "49.00")


def test_a_quote_applies_add_ons_and_a_coupon(anonymous_api, catalog):
    body = quote(
        anonymous_api,
        {
            "plan": "pro",
            "addons": ["priority-support", {"code": "quota-pack-1m", "quantity": 2}],
            "coupon": "launch20",
        },
    ).json()
    # 49 + 99 + 2 x 29 = 206; 20% off = 41.20
    assert (body["subtotal"], body["discount"], body["total"]) == ("206.00", "41.20", "164.80")
    assert [line["kind"] for line in body["lines"]][-3:] == ["addon", "addon", "discount"]


def test_operators_may_quote_private_plans(admin_api, catalog):
    response = quote(admin_api, {"plan": "enterprise"})
    assert response.status_code == 200
    assert response.json()["total"] == "5000.00"  # base fee trued up to the commitment


QUANTITY_PROBLEMS = [
    ("-1", "negative_quantity"),
    (-0.5, "negative_quantity"),
    ("abc", "invalid_quantity"),
    ("", "invalid_quantity"),
    ("1,000", "invalid_quantity"),
    ("0x10", "invalid_quantity"),
    ("NaN", "invalid_quantity"),
    ("Infinity", "invalid_quantity"),
    ("-Infinity", "invalid_quantity"),
    ("1e400", "invalid_quantity"),  # beyond anything the ledger can hold
    ("0.0000000000001", "invalid_quantity"),  # 13 decimals
    (True, "invalid_quantity"),
    (None, "invalid_quantity"),
    ([1], "invalid_quantity"),
    ({"n": 1}, "invalid_quantity"),
]


@pytest.mark.parametrize(("value", "code"), QUANTITY_PROBLEMS, ids=lambda v: repr(v)[:20])
def test_quote_usage_must_be_a_non_negative_number(anonymous_api, catalog, value, code):
    before = stored()
    response = quote(anonymous_api, {"plan": "pro", "usage": {"requests": value}})
    problem = assert_problem(response, 400, code)
    assert problem["errors"][0]["field"] == "usage.requests"
    assert stored() == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "nope"}, 404, "unknown_plan"),
        ({"plan": "enterprise"}, 404, "unknown_plan"),  # private: not for anonymous callers
        ({}, 404, "unknown_plan"),
        ({"plan": 7}, 404, "unknown_plan"),
        ({"plan": "pro", "version": 99}, 404, "unknown_version"),
        ({"plan": "pro", "version": "1"}, 404, "unknown_version"),
        ({"plan": "pro", "usage": {"reqs": "1"}}, 400, "unknown_meter"),
        ({"plan": "pro", "usage": [1]}, 400, "validation_error"),
        ({"plan": "pro", "usage": "lots"}, 400, "validation_error"),
        ({"plan": "pro", "addons": ["nope"]}, 400, "unknown_addon"),
        ({"plan": "pro", "addons": "priority-support"}, 400, "validation_error"),
        (
            {"plan": "pro", "addons": [{"code": "priority-support", "quantity": 0}]},
            400,
            "validation_error",
        ),
        ({"plan": "pro", "coupon": "nope"}, 400, "unknown_coupon"),
        ([{"plan": "pro"}], 400, "validation_error"),
        ("pro", 400, "validation_error"),
    ],
)
def test_bad_quotes_are_problems(anonymous_api, catalog, body, status, code):
    assert_problem(quote(anonymous_api, body), status, code)


def test_a_malformed_quote_body_is_a_problem(anonymous_api, catalog):
    response = anonymous_api.post(QUOTE, "{not json", content_type="application/json")
    assert_problem(response, 400, "malformed_request")


def test_an_add_on_in_another_currency_cannot_be_quoted(anonymous_api, currency_plans):
    response = quote(anonymous_api, {"plan": "yen-calls", "addons": ["priority-support"]})
    problem = assert_problem(response, 400, "currency_mismatch")
    assert problem["errors"][0]["field"] == "addons[0]"


# --- Plans as code --------------------------------------------------------------------------
STARTER = {
    "code": "starter",
    "name": "Starter",
    "currency": "USD",
    "base_fee": "19.00",
    "charges": [
        {
            "meter": "requests",
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_amount": "0.001"},
                {"up_to": None, "unit_amount": "0.0005"},
            ],
        }
    ],
}


def test_creating_a_plan_applies_the_documented_defaults(admin_api, anonymous_api, catalog):
    body = {**STARTER, "entitlements": {"rate_limits": [{"limit": 10, "window_seconds": 1}]}}
    response = admin_api.post(PLANS, body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["public"], created["trial_days"], created["interval"]) == (True, 0, "month")
    assert (created["version"], created["base_fee"]) == (1, "19.00")
    assert created["entitlements"]["rate_limits"] == [
        {"limit": 10, "window_seconds": 1, "burst": 10, "scope": "key"}
    ]
    assert created["entitlements"]["scopes"] == ["read"]
    listed = [plan["code"] for plan in anonymous_api.get(PLANS).json()["results"]]
    assert "starter" in listed
    entry = AuditLogEntry.objects.get(
        action="plan.created", target_id=str(Plan.objects.get(code="starter").pk)
    )
    assert entry.actor_type == AuditLogEntry.ActorType.TOKEN


def test_the_public_plan_list_leaves_out_private_plans(anonymous_api, catalog):
    plans = anonymous_api.get(PLANS).json()["results"]
    assert [plan["code"] for plan in plans] == ["free", "pro", "business"]
    assert plans[1]["base_fee"] == "49.00"


def charge(**fields) -> dict:
    return {"meter": "requests", "model": "per_unit", "unit_amount": "0.01", **fields}


def tiers(*bounds) -> list:
    return [{"up_to": bound, "unit_amount": "0.01"} for bound in bounds]


BAD_PLANS = [
    # (what is wrong, changes to STARTER, code, field)
    (
        "non-increasing tiers",
        {"charges": [charge(model="graduated", tiers=tiers("100", "100", None))]},
        "invalid_tiers",
        "charges[0].tiers",
    ),
    (
        "decreasing tiers",
        {"charges": [charge(model="volume", tiers=tiers("100", "50", None))]},
        "invalid_tiers",
        "charges[0].tiers",
    ),
    (
        "bounded last tier",
        {"charges": [charge(model="graduated", tiers=tiers("100", "200"))]},
        "invalid_tiers",
        "charges[0].tiers",
    ),
    (
        "open tier before the last",
        {"charges": [charge(model="graduated", tiers=tiers(None, "200", None))]},
        "invalid_tiers",
        "charges[0].tiers",
    ),
    (
        "no tiers",
        {"charges": [charge(model="graduated", tiers=[])]},
        "validation_error",
        "charges[0].tiers",
    ),
    (
        "too many tiers",
        {"charges": [charge(model="graduated", tiers=tiers(*range(1, 21), None))]},
        "validation_error",
        "charges[0].tiers",
    ),
    (
        "tier not an object",
        {"charges": [charge(model="graduated", tiers=["0.01"])]},
        "validation_error",
        "charges[0].tiers[0]",
    ),
    (
        "per_unit without unit_amount",
        {"charges": [{"meter": "requests", "model": "per_unit"}]},
        "validation_error",
        "charges[0].unit_amount",
    ),
    (
        "package_size 0",
        {"charges": [charge(model="package", package_size="0", package_amount="1")]},
        "validation_error",
        "charges[0].package_size",
    ),
    (
        "package without package_size",
        {"charges": [charge(model="package", package_amount="1")]},
        "validation_error",
        "charges[0].package_size",
    ),
    (
        "minimum above maximum",
        {"charges": [charge(minimum="10", maximum="5")]},
        "validation_error",
        "charges[0].minimum",
    ),
    ("unknown currency", {"currency": "XXX"}, "unsupported_currency", "currency"),
    ("currency not a string", {"currency": 840}, "unsupported_currency", "currency"),
    (
        "two charges for one meter",
        {"charges": [charge(), charge(unit_amount="0.02")]},
        "validation_error",
        "charges",
    ),
    ("unknown meter", {"charges": [charge(meter="reqs")]}, "unknown_meter", "charges[0].meter"),
    (
        "unknown model",
        {"charges": [charge(model="tiered")]},
        "validation_error",
        "charges[0].model",
    ),
    ("charge not an object", {"charges": ["requests"]}, "validation_error", "charges[0]"),
    ("charges not a list", {"charges": {"requests": "0.01"}}, "validation_error", "charges"),
    (
        "negative price",
        {"charges": [charge(unit_amount="-0.01")]},
        "validation_error",
        "charges[0].unit_amount",
    ),
    (
        "price not a number",
        {"charges": [charge(unit_amount="cheap")]},
        "validation_error",
        "charges[0].unit_amount",
    ),
    (
        "price with 13 decimals",
        {"charges": [charge(unit_amount="0.0000000000001")]},
        "validation_error",
        "charges[0].unit_amount",
    ),
    ("negative base fee", {"base_fee": "-1"}, "validation_error", "base_fee"),
    ("uppercase code", {"code": "Starter"}, "validation_error", "code"),
    ("non-ASCII code", {"code": "stärter"}, "validation_error", "code"),
    ("empty code", {"code": ""}, "validation_error", "code"),
    ("code not a string", {"code": 7}, "validation_error", "code"),
    ("no name", {"name": "  "}, "validation_error", "name"),
    ("unknown interval", {"interval": "week"}, "validation_error", "interval"),
    ("negative trial", {"trial_days": -1}, "validation_error", "trial_days"),
    ("trial as a string", {"trial_days": "14"}, "validation_error", "trial_days"),
    ("public as a string", {"public": "yes"}, "validation_error", "public"),
    (
        "discount above 100",
        {"commitment_discount_percent": "150"},
        "validation_error",
        "commitment_discount_percent",
    ),
    ("entitlements not an object", {"entitlements": []}, "validation_error", "entitlements"),
    (
        "rate limit of 0",
        {"entitlements": {"rate_limits": [{"limit": 0, "window_seconds": 1}]}},
        "validation_error",
        "entitlements.rate_limits[0].limit",
    ),
    (
        "burst below the limit",
        {"entitlements": {"rate_limits": [{"limit": 10, "window_seconds": 1, "burst": 5}]}},
        "validation_error",
        "entitlements.rate_limits[0].burst",
    ),
    (
        "quota on an unknown meter",
        {"entitlements": {"quotas": [{"meter": "reqs", "limit": "10"}]}},
        "unknown_meter",
        "entitlements.quotas[0].meter",
    ),
    (
        "feature flag not a boolean",
        {"entitlements": {"features": {"sso": "yes"}}},
        "validation_error",
        "entitlements.features",
    ),
]


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [case[1:] for case in BAD_PLANS],
    ids=[case[0] for case in BAD_PLANS],
)
def test_bad_plan_bodies_are_refused_and_nothing_is_stored(
    admin_api, catalog, changes, code, field
):
    before = stored()
    problem = assert_problem(
        admin_api.post(PLANS, {**STARTER, **changes}, format="json"), 400, code
    )
    assert [error["field"] for error in problem["errors"]] == [field]
    assert stored() == before


@pytest.mark.parametrize("body", [[STARTER], "starter", 7])
def test_a_plan_body_must_be_an_object(admin_api, catalog, body):
    before = stored()
    assert_problem(admin_api.post(PLANS, body, format="json"), 400, "validation_error")
    assert stored() == before


def test_a_taken_plan_code_is_a_conflict(admin_api, catalog):
    before = stored()
    problem = assert_problem(
        admin_api.post(PLANS, {**STARTER, "code": "pro"}, format="json"), 409, "plan_code_taken"
    )
    assert problem["errors"][0]["field"] == "code"
    assert stored() == before


def test_a_new_version_keeps_the_old_one(admin_api, catalog):
    old = list(Plan.objects.get(code="pro").versions.values_list("number", "base_fee"))
    response = admin_api.post(
        f"{PLANS}/pro/versions", {"base_fee": "59.00", "charges": STARTER["charges"]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["version"], response.json()["base_fee"]) == (2, "59.00")
    versions = list(Plan.objects.get(code="pro").versions.values_list("number", "base_fee"))
    assert versions[1:] == old  # newest first


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (f"{PLANS}/nope/versions", {"base_fee": "1"}, 404, "unknown_plan"),
        (f"{PLANS}/pro/versions", [], 400, "validation_error"),
        (f"{PLANS}/pro/versions", {"charges": [charge(meter="reqs")]}, 400, "unknown_meter"),
        (f"{PLANS}/pro/versions", {"base_fee": "free"}, 400, "validation_error"),
    ],
)
def test_bad_versions_are_refused(admin_api, catalog, path, body, status, code):
    before = stored()
    assert_problem(admin_api.post(path, body, format="json"), status, code)
    assert stored() == before


# --- Subscriptions --------------------------------------------------------------------------
def test_an_org_token_subscribes_its_own_organization(api, org, catalog):
    response = api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["customer"], body["plan"], body["version"], body["status"]) == (
        "acme",
        "pro",
        1,
        "trialing",
    )
    assert body["scheduled_migration"] is None
    assert api.get(CURRENT).json()["id"] == body["id"]


def test_subscribing_again_to_another_plan_changes_it(api, catalog):
    api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    response = api.post(SUBSCRIPTIONS, {"plan": "business"}, format="json")
    assert response.status_code == 200
    assert response.json()["plan"] == "business"


def test_subscribing_twice_to_the_same_plan_is_a_conflict(api, catalog):
    api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    before = stored()
    assert_problem(api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json"), 409, "already_on_plan")
    assert stored() == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "nope"}, 404, "unknown_plan"),
        ({"plan": "enterprise"}, 404, "unknown_plan"),  # private: operators only
        ({}, 404, "unknown_plan"),
        ({"plan": "pro", "coupon": "nope"}, 400, "unknown_coupon"),
        (["pro"], 400, "validation_error"),
    ],
)
def test_bad_subscriptions_are_refused_and_nothing_is_stored(api, catalog, body, status, code):
    before = stored()
    assert_problem(api.post(SUBSCRIPTIONS, body, format="json"), status, code)
    assert stored() == before


def test_operators_subscribe_a_named_customer_to_a_private_plan(admin_api, org, catalog):
    response = admin_api.post(
        SUBSCRIPTIONS, {"plan": "enterprise", "customer": "acme"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["customer"], response.json()["plan"]) == ("acme", "enterprise")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "pro"}, 400, "validation_error"),  # which customer?
        ({"plan": "pro", "customer": "nobody"}, 404, "not_found"),
    ],
)
def test_operators_must_name_an_existing_customer(admin_api, org, catalog, body, status, code):
    before = stored()
    response = admin_api.post(SUBSCRIPTIONS, body, format="json")
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert stored() == before


def test_without_a_subscription_current_is_not_found(api, catalog):
    assert_problem(api.get(CURRENT), 404, "no_subscription")
    assert_problem(api.get(f"{CURRENT}/preview"), 404, "no_subscription")


@pytest.mark.usefixtures("no_trials")
def test_the_preview_has_a_quote_to_date_and_a_forecast(api, catalog):
    api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    body = api.get(f"{CURRENT}/preview").json()
    assert set(body) == {"period", "as_of", "to_date", "forecast"}
    assert set(body["to_date"]) == set(body["forecast"]) == QUOTE_KEYS
    assert body["to_date"]["total"] == "49.00"


def test_cancel_schedules_the_end_of_the_period(api, catalog):
    api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    body = api.post(f"{CURRENT}/cancel", {}, format="json").json()
    assert body["cancel_at_period_end"] is True


# --- Estimates -------------------------------------------------------------------------------
@pytest.mark.usefixtures("no_trials")
def test_an_estimate_prices_a_large_job(api, catalog):
    api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    body = api.post(
        ESTIMATES, {"meter": "records_processed", "quantity": "2000000"}, format="json"
    ).json()
    assert (body["meter"], body["quantity"], body["currency"], body["cost"]) == (
        "records_processed",
        "2000000",
        "USD",
        "5000.00",  # 2,000 packages of 1,000 at 2.50
    )
    assert body["period_total_after"] == "5049.00"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"meter": "nope", "quantity": "1"}, "unknown_meter"),
        ({"meter": 5, "quantity": "1"}, "unknown_meter"),
        ({"quantity": "1"}, "unknown_meter"),
        ({"meter": "requests", "quantity": "-5"}, "negative_quantity"),
        ({"meter": "requests", "quantity": "five"}, "invalid_quantity"),
        ({"meter": "requests"}, "invalid_quantity"),
        ({"meter": "requests", "quantity": "1e400"}, "invalid_quantity"),
        (["requests"], "validation_error"),
    ],
)
def test_bad_estimates_are_problems(api, catalog, body, code):
    api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json")
    before = stored()
    assert_problem(api.post(ESTIMATES, body, format="json"), 400, code)
    assert stored() == before


def test_an_estimate_needs_a_subscription(api, catalog):
    response = api.post(ESTIMATES, {"meter": "requests", "quantity": "1"}, format="json")
    assert_problem(response, 404, "no_subscription")


# --- Tenant isolation -----------------------------------------------------------------------
@pytest.fixture
def acme_on_pro(api, catalog):
    assert api.post(SUBSCRIPTIONS, {"plan": "pro"}, format="json").status_code == 201
    return Subscription.objects.get(organization__slug="acme")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", CURRENT, None),
        ("get", f"{CURRENT}/preview", None),
        ("post", f"{CURRENT}/cancel", {"customer": "acme"}),
        ("post", f"{CURRENT}/addons", {"addon": "priority-support", "customer": "acme"}),
        ("post", f"{CURRENT}/preview-change", {"plan": "business", "customer": "acme"}),
        ("post", ESTIMATES, {"meter": "requests", "quantity": "1", "customer": "acme"}),
    ],
)
def test_an_org_token_never_reaches_another_organizations_subscription(
    other_api, acme_on_pro, method, path, body
):
    before = stored()
    if method == "get":
        response = other_api.get(path, {"customer": "acme"})
    else:
        response = other_api.post(path, body, format="json")
    # Globex has no subscription; naming acme changes nothing about whose data it sees.
    assert_problem(response, 404, "no_subscription")
    assert "acme" not in response.content.decode()
    assert stored() == before


def test_an_org_token_naming_another_customer_subscribes_its_own(other_api, acme_on_pro):
    response = other_api.post(
        SUBSCRIPTIONS, {"plan": "business", "customer": "acme"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["customer"] == "globex"
    acme_on_pro.refresh_from_db()
    assert [p.plan_version.plan.code for p in acme_on_pro.phases.all()] == ["pro"]
    assert other_api.get(CURRENT).json()["customer"] == "globex"


def test_each_organization_sees_only_its_own_subscription(api, other_api, acme_on_pro):
    other_api.post(SUBSCRIPTIONS, {"plan": "business"}, format="json")
    assert (api.get(CURRENT).json()["customer"], api.get(CURRENT).json()["plan"]) == (
        "acme",
        "pro",
    )
    assert other_api.get(CURRENT, {"customer": "acme"}).json()["customer"] == "globex"
    other_api.post(f"{CURRENT}/cancel", {"customer": "acme"}, format="json")
    acme_on_pro.refresh_from_db()
    assert not acme_on_pro.cancel_at_period_end


def test_an_add_on_is_added_to_the_callers_subscription(api, acme_on_pro):
    response = api.post(f"{CURRENT}/addons", {"addon": "priority-support"}, format="json")
    assert response.status_code == 201
    assert response.json()["addons"] == [{"code": "priority-support", "quantity": 1}]
    assert AddOn.objects.get(code="priority-support")
