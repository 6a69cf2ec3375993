"""The event catalog (HOOK-1): schemas and examples that agree, the public event-types API,
the AsyncAPI document, and the portal's catalog page."""

import json

import pytest
from django.urls import reverse
from jsonschema import Draft202012Validator

from portal.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from webhooks.catalog import (
    CATALOG,
    asyncapi_document,
    envelope_schema,
    event_type_get,
    example_envelope,
    payload_errors,
)
from webhooks.services import emit

# Public API paths of this module, for the route coverage test in tests/portal/test_api.py.
PUBLIC_CATALOG_PATHS = {"/api/v1/event-types", "/api/v1/asyncapi.json"}
REQUIRED_TYPES = {
    "ping",
    "key.created",
    "key.rotated",
    "key.revoked",
    "usage.threshold_reached",
    "usage.anomaly_detected",
    "quota.exhausted",
    "subscription.created",
    "subscription.updated",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
}
SECRET_WORDS = ("secret", "raw_key", "token", "password", "key_hash")


def all_property_names(schema) -> set[str]:
    names = set()
    if isinstance(schema, dict):
        names |= set((schema.get("properties") or {}).keys())
        for value in schema.values():
            names |= all_property_names(value)
    elif isinstance(schema, list):
        for value in schema:
            names |= all_property_names(value)
    return names


# --- The catalog ------------------------------------------------------------------------------
def test_the_catalog_has_every_type_the_issue_names():
    assert set(CATALOG) >= REQUIRED_TYPES
    assert all(event_type.version == 1 for event_type in CATALOG.values())


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_schema_is_valid_2020_12_and_its_examples_validate(name):
    event_type = CATALOG[name]
    Draft202012Validator.check_schema(event_type.schema)
    Draft202012Validator.check_schema(envelope_schema(event_type))
    assert event_type.description and event_type.examples
    for example in event_type.examples:
        Draft202012Validator(event_type.schema).validate(example)
        assert payload_errors(example_envelope(event_type, example)) == []


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_no_event_has_a_field_for_a_secret(name):
    names = all_property_names(CATALOG[name].schema)
    assert not [n for n in names if any(word in n for word in SECRET_WORDS)]


def test_payloads_that_break_the_schema_are_reported():
    event_type = event_type_get("invoice.paid")
    good = example_envelope(event_type, event_type.examples[0])
    assert payload_errors(good) == []
    assert payload_errors({**good, "type": "invoice.lost"}) == ["unknown event type 'invoice.lost'"]
    float_amount = {**good, "data": {**good["data"], "total": 61.25}}
    assert payload_errors(float_amount) == ["data/total: 61.25 is not of type 'string'"]
    naive_time = {**good, "data": {**good["data"], "paid_at": "2026-11-01T10:30:04"}}
    assert payload_errors(naive_time) == [
        "data/paid_at: '2026-11-01T10:30:04' is not a 'date-time'"
    ]
    missing = {**good, "data": {k: v for k, v in good["data"].items() if k != "number"}}
    assert payload_errors(missing) == ["data: 'number' is a required property"]
    assert payload_errors({**good, "version": 2})  # another version is another contract


def test_emit_refuses_a_type_outside_the_catalog(org):
    with pytest.raises(ValueError, match="Unknown event type"):
        emit(organization=org, type="key.stolen", data={})


def test_a_change_kind_requires_its_details():
    schema = Draft202012Validator(CATALOG["subscription.updated"].schema)
    example = dict(CATALOG["subscription.updated"].examples[0])
    assert example["change"] == "plan_changed"
    del example["previous"]
    assert not schema.is_valid(example)


# --- GET /api/v1/event-types ------------------------------------------------------------------
def test_event_types_are_listed_publicly(anonymous_api):
    response = anonymous_api.get("/api/v1/event-types")
    assert response.status_code == 200, response.content
    assert response["X-Request-Id"]
    assert "public" in response["Cache-Control"]
    results = response.json()["results"]
    assert [row["name"] for row in results] == sorted(CATALOG)
    key_created = next(row for row in results if row["name"] == "key.created")
    assert set(key_created) == {"name", "version", "description", "schema", "examples"}
    assert key_created["version"] == 1
    schema = key_created["schema"]
    assert schema.pop("$schema") == "https://json-schema.org/draft/2020-12/schema"
    assert schema == CATALOG["key.created"].schema
    assert anonymous_api.get("/api/v1/event-types/").status_code == 200


def test_event_types_ignore_a_token_and_show_the_same_to_everyone(api, anonymous_api):
    assert api.get("/api/v1/event-types").json() == anonymous_api.get("/api/v1/event-types").json()


def test_event_types_answer_only_get(anonymous_api):
    assert anonymous_api.post("/api/v1/event-types", {}, format="json").status_code == 405


# --- GET /api/v1/asyncapi.json -----------------------------------------------------------------
def resolve(document: dict, ref: str):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def all_refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


def test_the_asyncapi_document_is_public_json_with_a_channel_per_type(anonymous_api):
    response = anonymous_api.get("/api/v1/asyncapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    document = json.loads(response.content)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    assert set(document["channels"]) == set(CATALOG)
    assert set(document["operations"]) == {f"send.{name}" for name in CATALOG}
    assert all(op["action"] == "send" for op in document["operations"].values())
    for ref in all_refs(document):
        resolve(document, ref)  # every reference points at something


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_asyncapi_message_is_the_whole_body_with_signature_headers(name):
    document = asyncapi_document()
    channel = document["channels"][name]
    [message_ref] = channel["messages"].values()
    message = resolve(document, message_ref["$ref"])
    payload = message["payload"]
    assert payload["required"] == [
        "id",
        "type",
        "version",
        "created_at",
        "organization",
        "environment",
        "data",
    ]
    assert payload["properties"]["data"] == CATALOG[name].schema
    headers = resolve(document, message["headers"]["$ref"])
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(headers["required"])
    assert message["examples"]
    for example in message["examples"]:
        Draft202012Validator(payload).validate(example["payload"])
        Draft202012Validator(headers).validate(example["headers"])


# --- The portal page --------------------------------------------------------------------------
def catalog_url(slug: str) -> str:
    return reverse("webhook_catalog:catalog", kwargs={"slug": slug})


def test_the_catalog_page_shows_every_type_with_schema_and_example(client, org):
    viewer = MembershipFactory(organization=org, role=Role.VIEWER).user
    client.force_login(viewer)
    response = client.get(catalog_url(org.slug))
    assert response.status_code == 200
    assert catalog_url(org.slug) == f"/o/{org.slug}/webhooks/catalog/"
    html = response.content.decode()
    for name in CATALOG:
        assert f'id="{name}"' in html
        assert f'id="{name}-heading"' in html
    assert "The subscription changed: <code>change</code> says how." in html
    assert "&quot;grace_ends_at&quot;" in html  # the schema, pretty-printed and escaped
    assert "tg_live_3kT9" in html  # an example
    assert reverse("api:asyncapi") in html and reverse("api:event-types") in html


def test_the_catalog_page_is_for_members_only(client, org):
    response = client.get(catalog_url(org.slug))
    assert response.status_code == 302  # to the login page
    client.force_login(UserFactory())
    assert client.get(catalog_url(org.slug)).status_code == 404
    stranger = OrganizationFactory(slug="initech")
    client.force_login(MembershipFactory(organization=stranger).user)
    assert client.get(catalog_url(org.slug)).status_code == 404
