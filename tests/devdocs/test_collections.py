"""Collections (DOCS-4): Postman v2.1 and Insomnia v4 exports of an API version.

The Postman output is validated against the collection v2.1 JSON Schema kept in
tests/data (source in tests/data/README.md) with the draft that schema declares. For
Insomnia, whose importer has no published schema, the test checks what the importer needs:
every parent exists, ids are unique, every `_type` is one it knows, and every variable a
request uses is defined in the environment.
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
from django.urls import reverse

from devdocs import collections
from devdocs.reader import KEY_PLACEHOLDER, Reader
from keys.models import ApiProduct, ApiVersion
from keys.services import api_version_create, key_create
from portal.audit import Actor
from portal.roles import Role
from tests.devdocs.test_reference import ODD_DOCUMENTS, documents_api
from tests.factories import MembershipFactory, ProjectFactory

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "postman-collection-v2.1.schema.json"
SYSTEM = Actor.system("test")
INSOMNIA_TYPES = {"workspace", "environment", "request_group", "request"}
INSOMNIA_VARIABLE = re.compile(r"\{\{\s*_\.([A-Za-z0-9_]+)\s*\}\}")
POSTMAN_VARIABLE = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")


def postman_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    assert validator_class is jsonschema.Draft4Validator  # the draft the schema declares
    validator_class.check_schema(schema)
    return validator_class(schema)


def assert_valid_postman(collection: dict) -> None:
    errors = sorted(postman_validator().iter_errors(collection), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def assert_importable_insomnia(export: dict) -> None:
    assert export["_type"] == "export" and export["__export_format"] == 4
    resources = export["resources"]
    ids = [resource["_id"] for resource in resources]
    assert len(ids) == len(set(ids)), "ids must be unique"
    by_id = {resource["_id"]: resource for resource in resources}
    workspaces = [r for r in resources if r["_type"] == "workspace"]
    assert len(workspaces) == 1 and workspaces[0]["parentId"] is None
    environment = next(r for r in resources if r["_type"] == "environment")
    for resource in resources:
        assert resource["_type"] in INSOMNIA_TYPES
        prefix = {
            "workspace": "wrk_",
            "environment": "env_",
            "request_group": "fld_",
            "request": "req_",
        }[resource["_type"]]
        assert resource["_id"].startswith(prefix)
        if resource["_type"] != "workspace":
            assert resource["parentId"] in by_id, f"{resource['_id']} has no parent"
        if resource["_type"] == "request":
            assert by_id[resource["parentId"]]["_type"] in ("request_group", "workspace")
            assert resource["method"] and resource["url"].startswith("{{ _.base_url }}")
            used = INSOMNIA_VARIABLE.findall(json.dumps(resource))
            assert set(used) <= set(environment["data"]), f"undefined variables {used}"


@pytest.fixture
def version(db):
    return api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=documents_api()
    )


def reader(api_key: str | None = None) -> Reader:
    return Reader(site_url="https://portal.example", secret=api_key)


def test_the_postman_schema_rejects_what_it_should():
    """The kept schema is a real check, not a pass-everything: broken collections fail it."""
    validator = postman_validator()
    assert not validator.is_valid({"info": {"name": "x"}, "item": []})  # no info.schema
    assert not validator.is_valid({"info": {"name": "x", "schema": "s"}})  # no item
    assert not validator.is_valid(
        {"info": {"name": "x", "schema": "s"}, "item": [{"name": "no request"}]}
    )
    assert not validator.is_valid(
        {"info": {"name": "x", "schema": "s"}, "item": [], "auth": {"type": "magic"}}
    )
    assert validator.is_valid({"info": {"name": "x", "schema": "s"}, "item": []})


def test_postman_collection_is_valid_v2_1_with_folders_per_tag(version):
    collection = collections.postman_collection(api_version=version, reader=reader("tg_test_abc"))
    assert_valid_postman(collection)
    assert collection["info"]["schema"] == collections.POSTMAN_SCHEMA
    assert [folder["name"] for folder in collection["item"]] == ["documents", "jobs"]
    requests = {
        item["name"]: item["request"] for folder in collection["item"] for item in folder["item"]
    }
    assert len(requests) == 8
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables == {
        "baseUrl": "https://portal.example/sandbox/documents/v1",
        "apiKey": "tg_test_abc",
    }
    assert collection["auth"] == {
        "type": "bearer",
        "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}],
    }
    get = requests["Get a document"]
    assert get["method"] == "GET"
    assert get["url"]["host"] == ["{{baseUrl}}"] and get["url"]["path"] == [
        "documents",
        ":document_id",
    ]
    assert get["url"]["variable"] == [
        {"key": "document_id", "value": "6f1c2a9e-3b4d-4e8f-9a0b-1c2d3e4f5a6b", "type": "string"}
    ]
    listing = requests["List documents"]["url"]
    assert {q["key"]: q["disabled"] for q in listing["query"]} == {
        "limit": True,
        "cursor": True,
        "q": True,
        "status": True,
    }
    create = requests["Create a document"]
    assert (
        create["body"]["mode"] == "raw" and create["body"]["options"]["raw"]["language"] == "json"
    )
    assert json.loads(create["body"]["raw"])["title"] == "Quarterly report"
    assert {"key": "Content-Type", "value": "application/json"} in create["header"]
    # Every variable a request uses is one the collection defines.
    used = set(POSTMAN_VARIABLE.findall(json.dumps(collection["item"])))
    assert used <= set(variables)
    # The saved example is the document's success example.
    item = next(
        i for f in collection["item"] for i in f["item"] if i["name"] == "Create documents in bulk"
    )
    assert (
        item["response"][0]["code"] == 202
        and json.loads(item["response"][0]["body"])["status"] == "queued"
    )


def test_insomnia_export_has_what_the_importer_needs(version):
    export = collections.insomnia_export(api_version=version, reader=reader("tg_test_abc"))
    assert_importable_insomnia(export)
    environment = next(r for r in export["resources"] if r["_type"] == "environment")
    assert environment["data"] == {
        "base_url": "https://portal.example/sandbox/documents/v1",
        "api_key": "tg_test_abc",
    }
    groups = [r["name"] for r in export["resources"] if r["_type"] == "request_group"]
    assert groups == ["documents", "jobs"]
    requests = {r["name"]: r for r in export["resources"] if r["_type"] == "request"}
    assert len(requests) == 8
    patch = requests["Update a document"]
    assert patch["url"] == "{{ _.base_url }}/documents/6f1c2a9e-3b4d-4e8f-9a0b-1c2d3e4f5a6b"
    assert patch["authentication"]["type"] == "bearer"
    assert patch["authentication"]["token"] == "{{ _.api_key }}"
    assert json.loads(patch["body"]["text"]) == {"status": "published"}
    assert patch["body"]["mimeType"] == "application/json"


def test_the_structure_check_catches_a_broken_insomnia_export(version):
    export = collections.insomnia_export(api_version=version, reader=reader())
    orphan = json.loads(json.dumps(export))
    next(r for r in orphan["resources"] if r["_type"] == "request")["parentId"] = "fld_gone"
    with pytest.raises(AssertionError):
        assert_importable_insomnia(orphan)
    undefined = json.loads(json.dumps(export))
    next(r for r in undefined["resources"] if r["_type"] == "request")["url"] = "{{ _.host }}/x"
    with pytest.raises(AssertionError):
        assert_importable_insomnia(undefined)


def test_downloads_are_attachments_with_the_readers_key(client, version):
    membership = MembershipFactory(role=Role.OWNER)
    _key, secret = key_create(
        actor=Actor(user=membership.user),
        project=ProjectFactory(organization=membership.organization),
        name="Docs key",
        environment="test",
    )
    anonymous = client.get(reverse("reference:postman", args=["documents", "v1"]))
    assert anonymous.status_code == 200
    assert anonymous["Content-Disposition"] == (
        'attachment; filename="documents-v1.postman_collection.json"'
    )
    assert "public" in anonymous["Cache-Control"]
    data = anonymous.json()
    assert {v["key"]: v["value"] for v in data["variable"]}["apiKey"] == KEY_PLACEHOLDER
    assert_valid_postman(data)

    client.force_login(membership.user)
    for name, filename in (
        ("postman", "documents-v1.postman_collection.json"),
        ("insomnia", "documents-v1.insomnia.json"),
    ):
        response = client.get(reverse(f"reference:{name}", args=["documents", "v1"]))
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
        assert "private" in response["Cache-Control"] and "no-store" in response["Cache-Control"]
        assert secret in response.content.decode()
    data = client.get(reverse("reference:postman", args=["documents", "v1"])).json()
    assert {v["key"]: v["value"] for v in data["variable"]}["apiKey"] == secret
    assert_importable_insomnia(
        client.get(reverse("reference:insomnia", args=["documents", "v1"])).json()
    )


def test_the_reference_page_links_both_collections(client, version):
    body = client.get(reverse("reference:version", args=["documents", "v1"])).content.decode()
    assert 'href="/docs/documents/v1/postman.json"' in body
    assert 'href="/docs/documents/v1/insomnia.json"' in body


def test_ids_are_stable_across_downloads_so_reimports_update(version):
    first = collections.postman_collection(api_version=version, reader=reader())
    again = collections.postman_collection(api_version=version, reader=reader())
    assert first == again
    one = collections.insomnia_export(api_version=version, reader=reader())
    two = collections.insomnia_export(api_version=version, reader=reader())
    assert [r["_id"] for r in one["resources"]] == [r["_id"] for r in two["resources"]]


@pytest.mark.parametrize("name", list(ODD_DOCUMENTS))
def test_odd_documents_still_make_valid_collections(db, name):
    product = ApiProduct.objects.create(code="odd", name="Odd")
    api_version = ApiVersion.objects.create(
        product=product, version="v1", openapi=ODD_DOCUMENTS[name]
    )
    assert_valid_postman(collections.postman_collection(api_version=api_version, reader=reader()))
    assert_importable_insomnia(
        collections.insomnia_export(api_version=api_version, reader=reader())
    )


def test_an_operation_that_cannot_be_read_is_exported_bare(db):
    from tests.devdocs.test_reference import SELF_REFERENCING

    product = ApiProduct.objects.create(code="odd", name="Odd")
    api_version = ApiVersion.objects.create(product=product, version="v1", openapi=SELF_REFERENCING)
    collection = collections.postman_collection(api_version=api_version, reader=reader())
    assert_valid_postman(collection)
    requests = {i["name"]: i["request"] for f in collection["item"] for i in f["item"]}
    assert requests["Loops"] == {"method": "GET", "url": "{{baseUrl}}/loop"}
    assert requests["Fine"]["url"]["raw"] == "{{baseUrl}}/fine"
    export = collections.insomnia_export(api_version=api_version, reader=reader())
    assert_importable_insomnia(export)


# --- Review fixes: bounded, cached exports; form bodies --------------------------------------
def test_a_huge_document_makes_bounded_collections_that_say_what_they_left_out(db):
    """Every example as large as examples get (it was 60 MB for 1,000 operations): each body
    is cut at MAX_BODY_CHARS, all of them stop at MAX_EXPORT_CHARS, and the items past it say
    so in their description."""
    from tests.devdocs.test_reference import wide_document

    product = ApiProduct.objects.create(code="wide", name="Wide")
    api_version = ApiVersion.objects.create(
        product=product, version="v1", openapi=wide_document(400)
    )
    collection = collections.postman_collection(api_version=api_version, reader=reader())
    assert_valid_postman(collection)
    items = [item for folder in collection["item"] for item in folder["item"]]
    assert len(items) == 400
    # The request body and the saved response, each counted once against the export.
    bodies = [item["request"].get("body", {}).get("raw", "") for item in items]
    saved = [response["body"] for item in items for response in item["response"]]
    assert max(len(text) for text in bodies + saved) <= collections.MAX_BODY_CHARS + 2
    assert sum(len(text) for text in bodies + saved) <= collections.MAX_EXPORT_CHARS
    assert len(json.dumps(collection)) < 3 * collections.MAX_EXPORT_CHARS
    left_out = [
        item
        for item in items
        if collections.RESPONSE_LEFT_OUT in item["request"].get("description", "")
    ]
    assert left_out and all(item["response"][0]["body"] == "" for item in left_out)
    assert any(
        collections.BODY_LEFT_OUT in item["request"].get("description", "") for item in items
    )

    export = collections.insomnia_export(api_version=api_version, reader=reader())
    assert_importable_insomnia(export)
    texts = [r["body"].get("text", "") for r in export["resources"] if r["_type"] == "request"]
    assert sum(len(text) for text in texts) <= collections.MAX_EXPORT_CHARS
    assert max(len(text) for text in texts) <= collections.MAX_BODY_CHARS


def test_exports_are_built_once_per_version_with_the_readers_values_put_in(client, version):
    membership = MembershipFactory(role=Role.OWNER)
    _key, secret = key_create(
        actor=Actor(user=membership.user),
        project=ProjectFactory(organization=membership.organization),
        name="Docs key",
        environment="test",
    )
    anonymous = {
        name: client.get(reverse(f"reference:{name}", args=["documents", "v1"])).json()
        for name in ("postman", "insomnia")
    }
    # The stored document never changes: changed behind the cache's back, the next download
    # is the one built before, which proves it was not built again.
    changed = documents_api()
    changed["paths"]["/documents"]["post"]["summary"] = "Changed behind the cache"
    ApiVersion.objects.filter(pk=version.pk).update(
        openapi=changed, openapi_text=json.dumps(changed)
    )
    client.force_login(membership.user)
    postman = client.get(reverse("reference:postman", args=["documents", "v1"])).json()
    insomnia = client.get(reverse("reference:insomnia", args=["documents", "v1"])).json()
    assert "Changed behind the cache" not in json.dumps(postman) + json.dumps(insomnia)
    assert {v["key"]: v["value"] for v in postman["variable"]} == {
        "baseUrl": "http://testserver/sandbox/documents/v1",
        "apiKey": secret,
    }
    environment = next(r for r in insomnia["resources"] if r["_type"] == "environment")
    assert environment["data"]["api_key"] == secret
    # Apart from the reader's values, the member's download is the anonymous one.
    assert {k: v for k, v in postman.items() if k != "variable"} == {
        k: v for k, v in anonymous["postman"].items() if k != "variable"
    }
    assert secret not in json.dumps(anonymous)
    assert_valid_postman(postman)
    assert_importable_insomnia(insomnia)


@pytest.mark.parametrize(
    ("media_type", "mode"),
    [("application/x-www-form-urlencoded", "urlencoded"), ("multipart/form-data", "formdata")],
)
def test_form_bodies_are_forms_in_postman_and_insomnia(db, media_type, mode):
    from tests.devdocs.test_reference import FORM_FIELDS, form_document

    product = ApiProduct.objects.create(code="forms", name="Forms")
    api_version = ApiVersion.objects.create(
        product=product, version="v1", openapi=form_document(media_type)
    )
    collection = collections.postman_collection(api_version=api_version, reader=reader())
    assert_valid_postman(collection)
    request = collection["item"][0]["item"][0]["request"]
    assert request["body"]["mode"] == mode and "raw" not in request["body"]
    assert [(field["key"], field["value"]) for field in request["body"][mode]] == FORM_FIELDS
    if mode == "formdata":
        assert all(field["type"] == "text" for field in request["body"][mode])
        assert not any(h["key"].lower() == "content-type" for h in request["header"])
    export = collections.insomnia_export(api_version=api_version, reader=reader())
    assert_importable_insomnia(export)
    found = next(r for r in export["resources"] if r["_type"] == "request")
    assert found["body"]["mimeType"] == media_type and "text" not in found["body"]
    assert [(p["name"], p["value"]) for p in found["body"]["params"]] == FORM_FIELDS
    content_types = [h["value"] for h in found["headers"] if h["name"].lower() == "content-type"]
    assert content_types == [media_type]  # no boundary written by hand
