"""Reading uploaded OpenAPI documents (devdocs/openapi_doc.py) and refusing bad ones.

Bad documents go through the real upload path, POST /api/v1/api-versions with an operator
token, and must come back as problem+json naming each reason, with nothing stored.
"""

import copy
import json
import time

import jsonschema
import pytest

from devdocs import openapi_doc
from keys.models import ApiProduct, ApiVersion, Endpoint
from tests.conftest import bearer_client
from tests.devdocs.test_reference import documents_api
from tests.factories import ApiTokenFactory


@pytest.fixture
def operator_api(db):
    return bearer_client(ApiTokenFactory(kind="operator", organization=None, scopes=["admin"]))


def post_version(api, document, version="v1"):
    return api.post(
        "/api/v1/api-versions",
        {"product": "documents", "version": version, "openapi": document},
        format="json",
    )


def test_the_documents_api_uploads_through_the_api(operator_api):
    response = post_version(operator_api, documents_api())
    assert response.status_code == 201, response.content
    assert len(response.json()["endpoints"]) == 8


def broken_ref(document):
    document["paths"]["/documents"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ] = {"$ref": "#/components/schemas/Missing"}


def external_ref(document):
    document["components"]["schemas"]["Document"]["properties"]["body"] = {
        "$ref": "https://evil.example/schemas.json#/Body"
    }


def self_ref(document):
    document["components"]["schemas"]["Loop"] = {"$ref": "#/components/schemas/Loop"}


def swagger_2(document):
    document.pop("openapi")
    document["swagger"] = "2.0"


def no_paths(document):
    document["paths"] = {}


def no_title(document):
    del document["info"]["title"]


def bad_sunset(document):
    document["paths"]["/documents/{document_id}/render"]["get"]["x-sunset"] = "next summer"


@pytest.mark.parametrize(
    ("mutate", "field", "detail"),
    [
        (broken_ref, "requestBody.content.application/json.schema", "points to nothing"),
        (external_ref, "components.schemas.Document.properties.body", "Only local references"),
        (self_ref, "components.schemas.Loop", "refers to itself"),
        (swagger_2, "openapi.openapi", "Only OpenAPI 3.x"),
        (no_paths, "openapi.paths", "paths must list operations"),
        (no_title, "openapi.info.title", "info.title is required"),
        (bad_sunset, "x-sunset", "ISO 8601"),
    ],
)
def test_bad_documents_are_refused_with_reasons_and_nothing_is_stored(
    operator_api, mutate, field, detail
):
    document = documents_api()
    mutate(document)
    response = post_version(operator_api, document)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "invalid_openapi"
    reasons = [(error["field"], error["detail"]) for error in body["errors"]]
    assert any(field in where and detail in why for where, why in reasons), reasons
    assert ApiProduct.objects.count() == ApiVersion.objects.count() == Endpoint.objects.count() == 0


def test_a_document_that_is_not_an_object_is_refused(operator_api):
    for document in ("openapi: 3.0.0", [1, 2], None):
        response = post_version(operator_api, document)
        assert response.status_code == 400
        assert response.json()["code"] in ("invalid_openapi", "validation_error")
    assert ApiVersion.objects.count() == 0


# --- Examples -----------------------------------------------------------------------------
def test_examples_come_from_the_document_first():
    document = documents_api()
    op = openapi_doc.operation(document, "get", "/jobs/{job_id}")
    status, media_type, body = openapi_doc.success_response(document, op)
    assert (status, media_type, body["status"]) == (200, "application/json", "running")
    assert (
        openapi_doc.media_example(
            document, op["responses"]["200"]["content"]["application/json"], "done"
        )["status"]
        == "done"
    )
    delete = openapi_doc.operation(document, "delete", "/documents/{document_id}")
    assert openapi_doc.success_response(document, delete) == (204, None, None)


def test_every_example_in_the_documents_api_matches_its_own_schema():
    """What the reference shows and the sandbox answers must be valid for the schema the
    reference shows next to it."""
    document = documents_api()
    checked = 0
    for item in document["paths"].values():
        for method, op in item.items():
            if method not in openapi_doc.METHODS:
                continue
            for _status, response in openapi_doc.responses(document, op):
                for media in (response.get("content") or {}).values():
                    schema = openapi_doc.deref(document, media.get("schema")) or {}
                    examples = [media["example"]] if "example" in media else []
                    examples += [e["value"] for e in (media.get("examples") or {}).values()]
                    for example in examples:
                        jsonschema.Draft202012Validator(
                            openapi_doc.json_schema(document, schema)
                        ).validate(example)
                        checked += 1
            found = openapi_doc.request_body(document, op)
            if found:
                _media_type, schema, _required, example = found
                jsonschema.Draft202012Validator(openapi_doc.json_schema(document, schema)).validate(
                    example
                )
                checked += 1
    assert checked >= 20


def test_generated_examples_satisfy_their_schema_when_the_document_has_none():
    document = documents_api()
    for name in ("Document", "DocumentCreate", "DocumentList", "BulkCreate", "BulkJob", "Problem"):
        schema = document["components"]["schemas"][name]
        stripped = json.loads(json.dumps(schema).replace('"example"', '"x-example"'))
        value = openapi_doc.example_for_schema(document, stripped)
        jsonschema.Draft202012Validator(openapi_doc.json_schema(document, stripped)).validate(value)


def test_recursive_schemas_make_short_examples():
    document = {
        "components": {
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Node"},
                        },
                        "parent": {"$ref": "#/components/schemas/Node"},
                    },
                }
            }
        }
    }
    value = openapi_doc.example_for_schema(document, {"$ref": "#/components/schemas/Node"})
    assert value == {"name": "string", "children": []}


def test_a_schema_that_fans_out_without_cycles_is_cut_by_the_budget():
    """Ten levels of eight properties is 8^10 values without a budget; the example stops."""
    schemas = {
        f"L{level}": {
            "type": "object",
            "properties": {
                f"p{i}": {"$ref": f"#/components/schemas/L{level + 1}"} for i in range(8)
            },
        }
        for level in range(10)
    }
    schemas["L10"] = {"type": "string"}
    document = {"components": {"schemas": schemas}}
    started = time.monotonic()
    value = openapi_doc.example_for_schema(document, {"$ref": "#/components/schemas/L0"})
    assert time.monotonic() - started < 2
    assert len(json.dumps(value)) < 200_000 and isinstance(value, dict)


def test_odd_bounds_do_not_break_or_bloat_examples():
    assert openapi_doc.example_for_schema(
        {}, {"type": "string", "minLength": 10**12}
    ) == "string".ljust(openapi_doc.MAX_EXAMPLE_STRING, "x")
    assert openapi_doc.example_for_schema({}, {"type": "string", "minLength": "many"}) == "string"
    assert openapi_doc.example_for_schema({}, {"type": "array", "minItems": "2", "items": {}}) == [
        None
    ]
    assert openapi_doc.example_for_schema({}, {"type": "object", "properties": ["a"]}) == {}


def test_responses_that_are_not_objects_read_as_empty():
    document = {"paths": {"/x": {"get": {"responses": {"200": "fine", "404": None}}}}}
    op = openapi_doc.operation(document, "get", "/x")
    assert openapi_doc.responses(document, op) == [("200", {}), ("404", {})]
    assert openapi_doc.success_response(document, op) == (200, None, None)


def test_path_items_that_are_not_objects_have_no_parameters():
    document = {"paths": {"/x": {"$ref": "#/components/notAnItem"}}, "components": {"notAnItem": 3}}
    assert openapi_doc.parameters(document, "get", "/x") == []


def test_json_schema_turns_openapi_30_nullable_into_a_null_type():
    document = documents_api()
    schema = openapi_doc.json_schema(document, document["components"]["schemas"]["DocumentList"])
    jsonschema.Draft202012Validator(schema).validate({"data": [], "next_cursor": None})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"data": [], "next_cursor": 3})
    assert copy.deepcopy(schema)["$schema"].endswith("2020-12/schema")
