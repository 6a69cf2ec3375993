"""The OpenAPI document is the SDK's contract: its examples and the app's real answers must
both fit the schemas it publishes, with no field the schema does not name."""

import copy
import json

import jsonschema
import pytest

# Operations whose request and response bodies must carry examples (issue #8, point 5).
OPERATIONS_WITH_EXAMPLES = {
    "projects_list",
    "projects_create",
    "projects_retrieve",
    "keys_list",
    "keys_create",
    "keys_rotate",
    "keys_revoke",
    "verify",
    "usage_events_ingest",
    "usage_query",
    "plans_list",
    "pricing_quote",
    "subscriptions_create",
    "subscriptions_current",
    "invoices_list",
    "invoices_retrieve",
    "webhook_endpoints_list",
    "webhook_endpoints_create",
    "events_list",
    "event_types_list",
    "meters_list",
}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document(django_db_blocker) -> dict:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/v1/schema?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def to_json_schema(node, *, closed: bool):
    """OpenAPI 3.0 schema objects → JSON Schema: `nullable` becomes a union with null, and
    (when `closed`) objects with named properties refuse any other key."""
    if isinstance(node, list):
        return [to_json_schema(item, closed=closed) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_json_schema(value, closed=closed) for key, value in node.items()}
    if closed and "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def validator_for(document: dict, schema: dict, *, closed: bool = True):
    components = to_json_schema(copy.deepcopy(document["components"]), closed=closed)
    root = {**to_json_schema(copy.deepcopy(schema), closed=closed), "components": components}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def operations(document: dict):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def example_cases(document: dict):
    for _path, _method, operation in operations(document):
        body = operation.get("requestBody", {}).get("content", {})
        for media_type, media in body.items():
            for name, example in media.get("examples", {}).items():
                yield operation["operationId"], f"request {media_type}", name, media, example
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                for name, example in media.get("examples", {}).items():
                    where = f"{status} {media_type}"
                    yield operation["operationId"], where, name, media, example


def test_the_main_operations_document_examples(document):
    with_examples = {case[0] for case in example_cases(document)}
    assert OPERATIONS_WITH_EXAMPLES - with_examples == set()


def test_every_example_fits_its_schema_exactly(document):
    failures = []
    count = 0
    for operation_id, where, name, media, example in example_cases(document):
        count += 1
        validator = validator_for(document, media["schema"])
        for error in validator.iter_errors(example["value"]):
            path = "/".join(str(part) for part in error.absolute_path)
            failures.append(f"{operation_id} {where} {name} at {path}: {error.message}")
    assert count >= 40
    assert failures == []


def test_the_schema_names_the_api_version_and_base_path(document):
    assert document["info"]["version"] == "1.0.0"
    assert all(path.startswith("/api/v1/") for path in document["paths"])


def test_a_paginated_list_is_described_as_a_cursor_page(document):
    schema = document["paths"]["/api/v1/keys"]["get"]["responses"]["200"]["content"]
    page = schema["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(document["components"]["schemas"][page]["properties"]) == {
        "next",
        "previous",
        "results",
    }


def test_a_closed_schema_rejects_an_unknown_field(document):
    # The check above is only as good as this: a misspelt field must not pass.
    media = document["paths"]["/api/v1/projects/{project_id}"]["get"]["responses"]["200"]
    validator = validator_for(document, media["content"]["application/json"]["schema"])
    good = media["content"]["application/json"]["examples"]["AProject"]["value"]
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "nmae": "typo"})
    assert not validator.is_valid({key: value for key, value in good.items() if key != "name"})


# --- The app's real answers, fetched through the SDK over HTTP, against the same schemas ----
def assert_fits(document: dict, path: str, method: str, status: int, body) -> None:
    response = document["paths"][path][method]["responses"][str(status)]
    media_type = "application/json" if status < 400 else "application/problem+json"
    validator = validator_for(document, response["content"][media_type]["schema"])
    errors = [
        f"{'/'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(body)
    ]
    assert errors == [], f"{method.upper()} {path} {status}"


@pytest.fixture
def growth_plan(meters):
    from billing.catalog import plan_create
    from portal.audit import Actor

    return plan_create(
        actor=Actor.system("test"),
        body={
            "code": "growth",
            "name": "Growth",
            "base_fee": "49.00",
            "charges": [
                {
                    "meter": "requests",
                    "model": "graduated",
                    "tiers": [
                        {"up_to": "100000", "unit_amount": "0"},
                        {"up_to": None, "unit_amount": "0.0004"},
                    ],
                }
            ],
        },
    )


@pytest.mark.django_db(transaction=True)
def test_projects_keys_and_errors_answer_as_documented(document, sdk):
    project = sdk.projects.create(name="Payments API", description="Card payments")
    assert_fits(document, "/api/v1/projects", "post", 201, project)
    sdk.projects.create(name="Second")
    page = sdk.request("GET", "/projects", params={"limit": 1})
    assert page["next"]
    assert_fits(document, "/api/v1/projects", "get", 200, page)

    key = sdk.keys.create(project=project["id"], name="server", environment="live")
    assert_fits(document, "/api/v1/keys", "post", 201, key)
    rotated = sdk.keys.rotate(key["id"], grace_period_seconds=60)
    assert_fits(document, "/api/v1/keys/{key_id}/rotate", "post", 201, rotated)
    revoked = sdk.keys.revoke(rotated["id"])
    assert_fits(document, "/api/v1/keys/{key_id}/revoke", "post", 200, revoked)
    assert_fits(document, "/api/v1/keys", "get", 200, sdk.request("GET", "/keys"))

    not_found = sdk.raw_request("GET", "/projects/5b0c3a52-8f0e-4d2f-9f57-3f1c2a9d4e10")
    assert_fits(document, "/api/v1/projects/{project_id}", "get", 404, not_found.json())
    invalid = sdk.raw_request(
        "POST", "/keys", json={"project": project["id"], "name": "x", "environment": "prod"}
    )
    assert_fits(document, "/api/v1/keys", "post", 400, invalid.json())


@pytest.mark.django_db(transaction=True)
def test_usage_verify_and_catalogs_answer_as_documented(document, sdk, make_sdk, org, org_token):
    from tests.factories import ApiTokenFactory

    operator = make_sdk(
        ApiTokenFactory(
            kind="operator", organization=None, scopes=["usage:write", "gate:verify", "admin"]
        )
    )
    result = operator.usage.ingest(
        [
            {"id": "a", "meter": "requests", "customer": org.slug},
            {"id": "b", "meter": "requests", "customer": org.slug, "quantity": "40"},
            {"id": "c", "meter": "reqs", "customer": org.slug},
        ]
    )
    assert result["accepted"] == 2 and len(result["rejected"]) == 1
    assert_fits(document, "/api/v1/usage/events", "post", 202, result)
    for group_by in (None, ["day"], ["hour", "project", "key", "endpoint"]):
        usage = sdk.usage.query(meter="requests", group_by=group_by)
        assert_fits(document, "/api/v1/usage", "get", 200, usage)

    project = sdk.projects.create(name="Gate")
    key = sdk.keys.create(project=project["id"], name="k", environment="live")
    for raw_key in (key["key"], "tg_live_nope"):
        decision = operator.gate.verify(key=raw_key, method="GET", path="/v1/documents/42")
        assert decision["allowed"] is False
        assert_fits(document, "/api/v1/verify", "post", 200, decision)

    assert_fits(document, "/api/v1/meters", "get", 200, sdk.request("GET", "/meters"))
    assert_fits(document, "/api/v1/event-types", "get", 200, sdk.request("GET", "/event-types"))

    endpoint = sdk.webhook_endpoints.create(
        url="https://hooks.example.com/tg", environment="live", event_types=["key.created"]
    )
    assert_fits(document, "/api/v1/webhook-endpoints", "post", 201, endpoint)
    listed = sdk.request("GET", "/webhook-endpoints")
    assert_fits(document, "/api/v1/webhook-endpoints", "get", 200, listed)
    events = sdk.request("GET", "/events")
    assert events["results"]
    assert_fits(document, "/api/v1/events", "get", 200, events)


@pytest.mark.django_db(transaction=True)
def test_plans_quotes_and_subscriptions_answer_as_documented(document, sdk, growth_plan):
    assert_fits(document, "/api/v1/plans", "get", 200, sdk.request("GET", "/plans"))
    quote = sdk.plans.quote(plan="growth", usage={"requests": "250000"})
    assert quote["total"] == "109.00"
    assert_fits(document, "/api/v1/pricing/quote", "post", 200, quote)

    subscription = sdk.subscriptions.create(plan="growth")
    assert_fits(document, "/api/v1/subscriptions", "post", 201, subscription)
    current = sdk.subscriptions.current()
    assert_fits(document, "/api/v1/subscriptions/current", "get", 200, current)
    preview = sdk.subscriptions.preview()
    assert_fits(document, "/api/v1/subscriptions/current/preview", "get", 200, preview)
    from billing.catalog import plan_create
    from portal.audit import Actor

    plan_create(
        actor=Actor.system("test"),
        body={"code": "scale", "name": "Scale", "base_fee": "199.00", "tier_rank": 2},
    )
    change = sdk.subscriptions.preview_change(plan="scale")
    assert change["difference"] == "150.00"
    path = "/api/v1/subscriptions/current/preview-change"
    assert_fits(document, path, "post", 200, change)


@pytest.mark.django_db(transaction=True)
def test_invoices_answer_as_documented(document, sdk, org, growth_plan, settings):
    from datetime import UTC, datetime

    from billing.ingest import usage_ingest
    from billing.invoicing import billing_run
    from billing.subscriptions import subscription_subscribe
    from portal.audit import Actor

    settings.USAGE_LATE_ARRIVAL_DAYS = 3650  # the periods below are in the past
    subscription_subscribe(
        actor=Actor.system("test"),
        organization=org,
        plan=growth_plan,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    event = {"id": "x", "meter": "requests", "customer": org.slug, "quantity": "250041"}
    usage_ingest(events=[{**event, "timestamp": "2026-01-10T00:00:00Z"}])
    billing_run(as_of=datetime(2026, 2, 2, tzinfo=UTC))
    billing_run(as_of=datetime(2026, 3, 1, 0, 30, tzinfo=UTC))

    page = sdk.invoices.list()
    assert [invoice["status"] for invoice in page] == ["upcoming", "open"]
    assert_fits(document, "/api/v1/invoices", "get", 200, page.raw)
    issued = sdk.invoices.retrieve(page.results[1]["id"])
    assert issued["total"] == "109.02"
    assert_fits(document, "/api/v1/invoices/{invoice_id}", "get", 200, issued)


@pytest.mark.django_db(transaction=True)
def test_alerts_simulations_profile_and_health_answer_as_documented(document, sdk, growth_plan):
    threshold = sdk.request(
        "POST", "/alert-thresholds", json={"kind": "usage", "meter": "requests", "value": "1000"}
    )
    assert_fits(document, "/api/v1/alert-thresholds", "post", 201, threshold)
    listed = sdk.request("GET", "/alert-thresholds")
    assert [item["id"] for item in listed["results"]] == [threshold["id"]]
    assert_fits(document, "/api/v1/alert-thresholds", "get", 200, listed)
    assert_fits(document, "/api/v1/alerts", "get", 200, sdk.request("GET", "/alerts"))

    sdk.subscriptions.create(plan="growth")
    simulation = sdk.request("POST", "/simulations", json={"plan": "growth"})
    assert simulation["periods"]
    assert_fits(document, "/api/v1/simulations", "post", 200, simulation)

    profile = sdk.request("PATCH", "/billing-profile", json={"legal_name": "Acme GmbH"})
    assert profile["legal_name"] == "Acme GmbH"
    assert_fits(document, "/api/v1/billing-profile", "patch", 200, profile)
    assert_fits(document, "/api/v1/health", "get", 200, sdk.request("GET", "/health"))
