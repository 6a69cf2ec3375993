"""Upload checks and the sandbox's validation of requests against odd but legal documents
(regressions from the docs portal's review)."""

import copy
import json
from pathlib import Path

import pytest
from django.conf import settings

from common.errors import InvalidInput
from devdocs import openapi_doc, sandbox
from devdocs.reader import Reader
from keys.models import ApiVersion
from keys.openapi import parse_openapi
from keys.services import api_version_create
from portal.audit import Actor

SYSTEM = Actor.system("test")
DOCUMENT = json.loads(
    (Path(settings.BASE_DIR) / "docs" / "examples" / "documents_api.json").read_text()
)


def refused_fields(document) -> list[str]:
    with pytest.raises(InvalidInput) as refused:
        parse_openapi(document)
    return [problem["field"] for problem in refused.value.extra["errors"]]


def test_a_path_item_given_as_a_reference_becomes_endpoints(db):
    document = copy.deepcopy(DOCUMENT)
    document.setdefault("components", {})["pathItems"] = {
        "Jobs": document["paths"].pop("/jobs/{job_id}")
    }
    document["paths"]["/jobs/{job_id}"] = {"$ref": "#/components/pathItems/Jobs"}

    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=document
    )

    assert version.endpoints.filter(method="GET", path_template="/jobs/{job_id}").exists()


def test_a_media_type_that_could_inject_a_header_is_refused():
    document = copy.deepcopy(DOCUMENT)
    responses = document["paths"]["/documents"]["get"]["responses"]["200"]
    responses["content"]["application/json\nX-Evil: 1"] = responses["content"].pop(
        "application/json"
    )
    [field] = refused_fields(document)
    assert field.startswith("openapi.paths./documents.get.responses.200.content")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "a\x00b"])
def test_values_postgresql_cannot_store_are_refused_with_their_place(bad):
    document = copy.deepcopy(DOCUMENT)
    document["info"]["x-note"] = bad
    assert "openapi.info.x-note" in refused_fields(document)


@pytest.mark.parametrize("label", ["2024/01", "v1 beta", "v1?x", "../v1", "", "v" * 33])
def test_a_version_label_must_be_safe_in_a_url(db, label):
    with pytest.raises(InvalidInput) as refused:
        api_version_create(actor=SYSTEM, product_code="documents", version=label, document=DOCUMENT)
    assert refused.value.code == "invalid_version"
    assert not ApiVersion.objects.exists()


def test_labels_are_quoted_in_sandbox_urls():
    reader = Reader(site_url="https://docs.test")
    assert reader.sandbox_url("documents", "2024-06-01") == (
        "https://docs.test/sandbox/documents/2024-06-01"
    )
    assert reader.sandbox_url("a b", "v/1") == "https://docs.test/sandbox/a%20b/v%2F1"


# --- Validation of requests ----------------------------------------------------------------
OPENAPI_30 = {
    "openapi": "3.0.3",
    "info": {"title": "T", "version": "1"},
    "paths": {
        "/things": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    }
                },
                "responses": {"201": {"description": "made"}},
            }
        }
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "required": ["id", "xml", "discriminator"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "readOnly": True},
                    "xml": {"type": "string"},
                    "discriminator": {"type": "string", "enum": ["a", "b"]},
                    "note": {"type": "string", "nullable": True, "example": "hi"},
                    "link": {"$ref": "#/paths/~1things/post/responses/201"},
                },
            }
        }
    },
}


def _errors(document, instance, version_id="v-test"):
    schema = openapi_doc.request_body(document, openapi_doc.operation(document, "POST", "/things"))
    validator = sandbox.validator_for(document, schema[1], (version_id, "POST", "/things", "b"))
    return [error.message for error in validator.iter_errors(instance)]


def test_properties_named_like_openapi_keywords_are_data_not_keywords():
    assert _errors(OPENAPI_30, {"xml": "<a/>", "discriminator": "a", "note": None}) == []
    assert _errors(OPENAPI_30, {"xml": "<a/>", "discriminator": "c"}) == [
        "'c' is not one of ['a', 'b']"
    ]
    # readOnly `id` is not required in a request; an unknown property still is refused.
    assert _errors(OPENAPI_30, {"xml": "x", "discriminator": "a", "other": 1}) == [
        "Additional properties are not allowed ('other' was unexpected)"
    ]


def test_validators_of_one_version_share_one_converted_document():
    sandbox._ROOTS.clear()
    sandbox._VALIDATORS.clear()
    for place in range(20):
        document = OPENAPI_30
        schema = document["components"]["schemas"]["Thing"]
        sandbox.validator_for(document, schema, ("one-version", str(place)))
    assert list(sandbox._ROOTS) == ["one-version"]
    registries = {id(validator._resolver) for validator in sandbox._VALIDATORS.values()}
    assert len(sandbox._VALIDATORS) == 20 and len(registries) == 20  # own resolvers...
    roots = {
        id(validator._resolver._registry.contents("urn:tollgate:api-version:one-version"))
        for validator in sandbox._VALIDATORS.values()
    }
    assert len(roots) == 1  # ...over the one shared document


def test_media_type_ranges_and_parameters_are_accepted():
    document = copy.deepcopy(DOCUMENT)
    content = document["paths"]["/documents"]["get"]["responses"]["200"]["content"]
    content["*/*"] = {"example": "raw"}
    content["text/plain; charset=utf-8"] = {"example": "raw"}
    assert parse_openapi(document).title == "Documents API"
