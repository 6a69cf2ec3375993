"""API products from OpenAPI documents: import all or nothing, groups, routing, admin."""

import copy

import pytest
from django.urls import reverse

from keys.models import ApiProduct, ApiVersion, Endpoint
from keys.routing import Router
from keys.selectors import endpoint_match
from keys.services import api_version_create, endpoint_update
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory, UserFactory

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "Documents API", "version": "1.0"},
    "servers": [{"url": "https://api.example.com/v1"}],
    "paths": {
        "/documents": {
            "get": {"operationId": "listDocuments", "tags": ["documents"]},
            "post": {"operationId": "createDocument"},
        },
        "/documents/{id}": {
            "parameters": [{"name": "id", "in": "path"}],
            "get": {"operationId": "getDocument"},
            "delete": {
                "operationId": "deleteDocument",
                "deprecated": True,
                "x-sunset": "2027-06-30T00:00:00Z",
            },
        },
        "/documents/search": {"get": {"operationId": "searchDocuments"}},
        "/documents/bulk": {"post": {"operationId": "bulkCreate", "x-tollgate-group": "bulk"}},
    },
}
SYSTEM = Actor.system("test")


@pytest.fixture
def admin_api(db):
    return bearer_client(ApiTokenFactory(kind="operator", organization=None, scopes=["admin"]))


def test_operations_become_endpoints_with_groups(db):
    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    groups = {
        (e.method, e.path_template): (e.group, e.group_source) for e in version.endpoints.all()
    }
    assert groups == {
        ("GET", "/documents"): ("read", "default"),
        ("POST", "/documents"): ("write", "default"),
        ("GET", "/documents/{id}"): ("read", "default"),
        ("DELETE", "/documents/{id}"): ("write", "default"),
        ("GET", "/documents/search"): ("read", "default"),
        ("POST", "/documents/bulk"): ("bulk", "document"),
    }
    deleted = version.endpoints.get(operation_id="deleteDocument")
    assert deleted.deprecated and deleted.sunset_at.year == 2027
    assert version.base_path == "/v1"
    assert version.product.name == "Documents API" and not version.product.private
    assert AuditLogEntry.objects.filter(action="api_version.created").count() == 1


def test_paths_match_with_or_without_the_base_path_and_literals_win(db):
    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    assert endpoint_match(version, "GET", "/documents/42").operation_id == "getDocument"
    assert endpoint_match(version, "GET", "/v1/documents/42").operation_id == "getDocument"
    assert endpoint_match(version, "GET", "/documents/search").operation_id == "searchDocuments"
    assert endpoint_match(version, "get", "/documents?page=2").operation_id == "listDocuments"
    assert endpoint_match(version, "PUT", "/documents/42") is None
    assert endpoint_match(version, "GET", "/documents/42/extra") is None


def test_router_prefers_the_most_literal_template():
    router = Router(
        [
            ("GET", "/a/{x}/c", "param-first"),
            ("GET", "/a/b/{y}", "literal-first"),
            ("GET", "/a/b/c", "all-literal"),
        ]
    )
    assert router.match("GET", "/a/b/c") == "all-literal"
    assert router.match("GET", "/a/b/z") == "literal-first"
    assert router.match("GET", "/a/q/c") == "param-first"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(openapi="2.0"), "openapi.openapi"),
        (lambda d: d.pop("info"), "openapi.info.title"),
        (lambda d: d.update(paths={}), "openapi.paths"),
        (lambda d: d["paths"].update({"documents": {"get": {}}}), "openapi.paths.documents"),
        (lambda d: d["paths"].update({"/x/{": {"get": {}}}), "openapi.paths./x/{"),
        (
            lambda d: d["paths"]["/documents"]["get"].update({"x-tollgate-group": "Bulk!"}),
            "openapi.paths./documents.get.x-tollgate-group",
        ),
        (
            lambda d: d["paths"]["/documents"]["get"].update({"x-sunset": "someday"}),
            "openapi.paths./documents.get.x-sunset",
        ),
    ],
)
def test_a_malformed_document_is_refused_with_reasons_and_nothing_changes(admin_api, mutate, field):
    document = copy.deepcopy(DOCUMENT)
    mutate(document)
    response = admin_api.post(
        "/api/v1/api-versions",
        {"product": "documents", "version": "v1", "openapi": document},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_openapi"
    assert field in [error["field"] for error in body["errors"]]
    assert ApiProduct.objects.count() == ApiVersion.objects.count() == Endpoint.objects.count() == 0


def test_upload_through_the_api_answers_201_with_endpoints(admin_api):
    response = admin_api.post(
        "/api/v1/api-versions",
        {"product": "documents", "version": "v1", "openapi": DOCUMENT},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["product"] == "documents" and body["base_path"] == "/v1"
    assert len(body["endpoints"]) == 6
    again = admin_api.post(
        "/api/v1/api-versions",
        {"product": "documents", "version": "v1", "openapi": DOCUMENT},
        format="json",
    )
    assert again.status_code == 409 and again.json()["code"] == "api_version_exists"
    listing = admin_api.get("/api/v1/api-versions").json()["results"]
    assert [item["version"] for item in listing] == ["v1"]


def test_api_versions_need_an_operator_admin_token(api, db):
    body = {"product": "documents", "version": "v1", "openapi": DOCUMENT}
    assert api.post("/api/v1/api-versions", body, format="json").json()["code"] == (
        "wrong_token_kind"
    )
    gate = bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])
    )
    assert gate.post("/api/v1/api-versions", body, format="json").json()["code"] == (
        "insufficient_scope"
    )
    assert ApiVersion.objects.count() == 0


def test_private_products_are_marked(admin_api):
    admin_api.post(
        "/api/v1/api-versions",
        {"product": "internal", "version": "v1", "openapi": DOCUMENT, "private": True},
        format="json",
    )
    assert ApiProduct.objects.get(code="internal").private


def test_operator_overrides_group_and_meter_with_an_audit_row(db):
    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    endpoint = version.endpoints.get(operation_id="createDocument")
    endpoint_update(actor=SYSTEM, endpoint=endpoint, group="bulk", meter_code="records_processed")
    endpoint.refresh_from_db()
    assert (endpoint.group, endpoint.group_source, endpoint.meter_code) == (
        "bulk",
        "operator",
        "records_processed",
    )
    assert AuditLogEntry.objects.filter(action="endpoint.updated").count() == 1


def test_admin_upload_uses_the_same_validation(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:keys_apiversion_add")
    assert client.get(url).status_code == 200
    bad = client.post(
        url, {"product_code": "documents", "version": "v1", "document": '{"openapi": "2.0"}'}
    )
    assert bad.status_code in (200, 400)
    assert ApiVersion.objects.count() == 0
    import json

    good = client.post(
        url, {"product_code": "documents", "version": "v1", "document": json.dumps(DOCUMENT)}
    )
    assert good.status_code == 302
    assert ApiVersion.objects.get().endpoints.count() == 6


# Covered by the credential tests above; the route guard in tests/portal/test_api.py reads it.
# /api/v1/verify has its credential tests in test_verify_api.py.
PRODUCT_ENDPOINT_PATHS = {"/api/v1/api-versions", "/api/v1/verify"}


@pytest.mark.parametrize("method", ["get", "post"])
def test_api_versions_without_a_token_are_401(anonymous_api, db, method):
    response = getattr(anonymous_api, method)("/api/v1/api-versions")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
