"""The management API contract across every endpoint, plus projects, the audit log and health.

Authentication and scopes live in portal (portal.authentication, portal.permissions), so the
bad-credential matrix for every org endpoint, keys included, is here; key-specific input
validation is in tests/keys/test_api.py.
"""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.urls import URLPattern, get_resolver
from django.utils import timezone
from drf_spectacular.validation import validate_schema

from common.models import IdempotencyRecord
from common.secrets import make_secret
from config import api_urls
from keys.models import ApiKey
from portal import services
from portal.audit import Actor
from portal.models import ApiToken, AuditLogEntry, Organization, Project
from portal.scopes import ORG_SCOPES
from tests.billing.test_alerts import ALERT_ENDPOINTS
from tests.billing.test_credentials import BILLING_ENDPOINTS
from tests.billing.test_invoices_api import INVOICE_ENDPOINTS
from tests.billing.test_pricing_credentials import PRICING_ENDPOINTS, PUBLIC_PRICING_PATHS
from tests.conftest import bearer_client
from tests.devdocs.test_status import STATUS_API_PATHS
from tests.factories import (
    ApiKeyFactory,
    ApiTokenFactory,
    OrganizationFactory,
    ProjectFactory,
)
from tests.keys.test_products import PRODUCT_ENDPOINT_PATHS
from tests.webhooks.test_catalog import PUBLIC_CATALOG_PATHS
from tests.webhooks.test_endpoints_api import WEBHOOK_ENDPOINTS

PROBLEM_CONTENT_TYPE = "application/problem+json"


def assert_problem(response, status: int, code: str) -> dict:
    """An RFC 9457 document with a stable code and the request id of its response."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(f"/problems/{code}")
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response["X-Request-Id"]
    return body


def stored_state() -> dict:
    """Everything an API call could change, to compare before and after a refused request."""
    return {
        "organizations": list(Organization.objects.order_by("id").values_list("id", "slug")),
        "projects": list(Project.objects.order_by("id").values_list("id", "name", "description")),
        "keys": list(
            ApiKey.objects.order_by("id").values_list(
                "id", "name", "revoked_at", "grace_ends_at", "replaced_by_id", "expires_at"
            )
        ),
        "tokens": list(ApiToken.objects.order_by("id").values_list("id", "revoked_at", "scopes")),
        "audit_rows": AuditLogEntry.objects.count(),
        "idempotency_records": IdempotencyRecord.objects.count(),
    }


@pytest.fixture
def resources(org):
    """A project and a key of `org`, for the paths that name one."""
    project = ProjectFactory(organization=org, name="Storefront")
    key = ApiKeyFactory(project=project)
    return {"project": project, "key": key}


# Every endpoint that acts for an organization: (method, path, scope it needs, a valid body).
ORG_ENDPOINTS = [
    ("get", "/api/v1/projects", "projects:read", None),
    ("post", "/api/v1/projects", "projects:write", lambda r: {"name": "Checkout"}),
    ("get", "/api/v1/projects/{project}", "projects:read", None),
    ("get", "/api/v1/keys", "keys:read", None),
    (
        "post",
        "/api/v1/keys",
        "keys:write",
        lambda r: {"project": str(r["project"].id), "name": "ci", "environment": "test"},
    ),
    ("get", "/api/v1/keys/{key}", "keys:read", None),
    ("post", "/api/v1/keys/{key}/rotate", "keys:write", lambda r: {"grace_period_seconds": 60}),
    ("post", "/api/v1/keys/{key}/revoke", "keys:write", None),
    ("get", "/api/v1/audit-log", "audit:read", None),
]
ENDPOINT_IDS = [f"{method.upper()} {path}" for method, path, _scope, _body in ORG_ENDPOINTS]
PUBLIC_PATHS = {"/api/v1/health", "/api/v1/schema", "/api/v1/docs", "/api/v1/redoc"}


def call(client, method, path, body, resources, *, trailing_slash=False, **headers):
    url = path.format(project=resources["project"].id, key=resources["key"].id)
    if trailing_slash:
        url += "/"
    if method == "get":
        return client.get(url, **headers)
    data = body(resources) if body else None
    return client.post(url, data, format="json", **headers)


def test_every_routed_path_is_covered_by_these_tests():
    routed = set()
    for pattern in get_resolver(api_urls).url_patterns:
        assert isinstance(pattern, URLPattern)
        route = re.sub(r"<(?:str|uuid):(\w+)_id>", r"{\1}", str(pattern.pattern))
        route = route.replace("<slug:code>", "{plan}")
        routed.add(f"/api/v1/{route}")
    covered = {path for _method, path, _scope, _body in ORG_ENDPOINTS} | PUBLIC_PATHS
    # Metering endpoints have their own credential tests (both token kinds may call some).
    covered |= {path for _method, path, _kinds, _body in BILLING_ENDPOINTS}
    covered |= {path for _method, path, _kinds, _body in PRICING_ENDPOINTS}
    covered |= PUBLIC_PRICING_PATHS
    covered |= PRODUCT_ENDPOINT_PATHS
    covered |= {path for _method, path, _kinds, _body in ALERT_ENDPOINTS}
    covered |= {path for _method, path, _kinds, _body in INVOICE_ENDPOINTS}
    covered |= PUBLIC_CATALOG_PATHS
    covered |= {path for _method, path, _kinds, _body in WEBHOOK_ENDPOINTS}
    covered |= STATUS_API_PATHS  # credential tests in tests/devdocs/test_status.py
    assert routed == covered


# --- Credentials and scopes, for every org endpoint --------------------------------------
@pytest.mark.parametrize(("method", "path", "scope", "body"), ORG_ENDPOINTS, ids=ENDPOINT_IDS)
def test_request_without_token_is_refused_with_authentication_required(
    anonymous_api, resources, method, path, scope, body
):
    before = stored_state()
    response = call(anonymous_api, method, path, body, resources)
    assert_problem(response, 401, "authentication_required")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert stored_state() == before


def _unknown_org_token(org):
    return f"Bearer {make_secret('tg_org_', 40)}"


def _typo_in_token(org):
    raw = ApiTokenFactory(organization=org).raw_token
    swapped = "A" if raw[20] != "A" else "B"
    return f"Bearer {raw[:20]}{swapped}{raw[21:]}"


def _revoked_token(org):
    token = ApiTokenFactory(organization=org)
    services.token_revoke(actor=Actor.system("test"), token=token)
    return f"Bearer {token.raw_token}"


def _expired_token(org):
    token = ApiTokenFactory(organization=org, expires_at=timezone.now() - timedelta(seconds=1))
    return f"Bearer {token.raw_token}"


def _basic_scheme(org):
    return f"Basic {ApiTokenFactory(organization=org).raw_token}"


BAD_CREDENTIALS = {
    "not a token": lambda org: "Bearer hello",
    "empty bearer": lambda org: "Bearer ",
    "key instead of token": lambda org: f"Bearer {ApiKeyFactory().raw_key}",
    "one-character typo": _typo_in_token,
    "unknown token": _unknown_org_token,
    "revoked token": _revoked_token,
    "expired token": _expired_token,
    "basic scheme": _basic_scheme,
}


@pytest.mark.parametrize("credential", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
@pytest.mark.parametrize(("method", "path", "scope", "body"), ORG_ENDPOINTS, ids=ENDPOINT_IDS)
def test_malformed_unknown_revoked_or_expired_token_is_refused_as_invalid(
    anonymous_api, org, resources, method, path, scope, body, credential
):
    header = credential(org)
    before = stored_state()
    response = call(anonymous_api, method, path, body, resources, HTTP_AUTHORIZATION=header)
    assert_problem(response, 401, "invalid_token")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert stored_state() == before


@pytest.mark.parametrize(("method", "path", "scope", "body"), ORG_ENDPOINTS, ids=ENDPOINT_IDS)
def test_token_without_the_scope_is_refused_with_insufficient_scope(
    org, resources, method, path, scope, body
):
    resource = scope.partition(":")[0]
    others = [s for s in ORG_SCOPES if not s.startswith(f"{resource}:")]
    client = bearer_client(ApiTokenFactory(organization=org, scopes=others))
    before = stored_state()
    response = call(client, method, path, body, resources)
    body_json = assert_problem(response, 403, "insufficient_scope")
    assert scope in body_json["detail"]
    assert stored_state() == before


@pytest.mark.parametrize(("method", "path", "scope", "body"), ORG_ENDPOINTS, ids=ENDPOINT_IDS)
def test_read_only_token_cannot_write_but_can_read(org, resources, method, path, scope, body):
    read_only = [s for s in ORG_SCOPES if s.endswith(":read")]
    client = bearer_client(ApiTokenFactory(organization=org, scopes=read_only))
    before = stored_state()
    response = call(client, method, path, body, resources)
    if scope.endswith(":write"):
        assert_problem(response, 403, "insufficient_scope")
        assert stored_state() == before
    else:
        assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("method", "path", "scope", "body"),
    [endpoint for endpoint in ORG_ENDPOINTS if endpoint[0] == "get"],
    ids=[
        i for i, endpoint in zip(ENDPOINT_IDS, ORG_ENDPOINTS, strict=True) if endpoint[0] == "get"
    ],
)
def test_write_scope_implies_read_scope(org, resources, method, path, scope, body):
    resource = scope.partition(":")[0]
    write = f"{resource}:write" if f"{resource}:write" in ORG_SCOPES else scope
    client = bearer_client(ApiTokenFactory(organization=org, scopes=[write]))
    response = call(client, method, path, body, resources)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(("method", "path", "scope", "body"), ORG_ENDPOINTS, ids=ENDPOINT_IDS)
def test_operator_token_is_refused_with_wrong_token_kind(resources, method, path, scope, body):
    client = bearer_client(ApiTokenFactory(kind=ApiToken.Kind.OPERATOR, organization=None))
    before = stored_state()
    response = call(client, method, path, body, resources)
    assert_problem(response, 403, "wrong_token_kind")
    assert stored_state() == before


@pytest.mark.parametrize("trailing_slash", [False, True], ids=["bare", "slash"])
@pytest.mark.parametrize(("method", "path", "scope", "body"), ORG_ENDPOINTS, ids=ENDPOINT_IDS)
def test_every_path_works_with_and_without_trailing_slash(
    api, resources, method, path, scope, body, trailing_slash
):
    response = call(api, method, path, body, resources, trailing_slash=trailing_slash)
    assert response.status_code in (200, 201), response.content
    assert response["Content-Type"] == "application/json"
    assert response["X-Request-Id"]


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
@pytest.mark.parametrize("suffix", ["", "/"], ids=["bare", "slash"])
def test_public_paths_need_no_token_with_or_without_trailing_slash(db, anonymous_api, path, suffix):
    response = anonymous_api.get(path + suffix)
    assert response.status_code == 200
    assert response["X-Request-Id"]


def test_token_use_is_recorded_as_last_used(api, org_token):
    assert org_token.last_used_at is None
    api.get("/api/v1/projects")
    org_token.refresh_from_db()
    assert org_token.last_used_at is not None


# --- Unknown paths and methods -----------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/api/v1/nonexistent", "/api/v1/nonexistent/", "/api/v2/keys", "/api/v1/keys/a/b/c"],
)
def test_unknown_api_path_is_a_problem_json_404_not_html(api, path):
    assert_problem(api.get(path), 404, "not_found")


def test_unknown_api_path_is_a_404_even_without_a_token(anonymous_api):
    assert_problem(anonymous_api.post("/api/v1/nonexistent", {}, format="json"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/v1/projects"),
        ("put", "/api/v1/projects/{project}"),
        ("delete", "/api/v1/projects/{project}"),
        ("patch", "/api/v1/keys"),
        ("delete", "/api/v1/keys/{key}"),
        ("put", "/api/v1/keys/{key}"),
        ("get", "/api/v1/keys/{key}/rotate"),
        ("get", "/api/v1/keys/{key}/revoke"),
        ("post", "/api/v1/audit-log"),
        ("post", "/api/v1/health"),
    ],
)
def test_wrong_method_is_a_problem_json_405(api, resources, method, path):
    url = path.format(project=resources["project"].id, key=resources["key"].id)
    before = stored_state()
    response = getattr(api, method)(url)
    assert_problem(response, 405, "method_not_allowed")
    assert method.upper() not in response["Allow"]
    assert stored_state() == before


def test_wrong_method_without_token_is_still_refused_as_unauthenticated(anonymous_api):
    assert_problem(anonymous_api.delete("/api/v1/projects"), 401, "authentication_required")


# --- Projects ----------------------------------------------------------------------------
def test_project_create_returns_the_project_and_stores_it(api, org):
    response = api.post(
        "/api/v1/projects", {"name": "  Checkout ", "description": "Payments"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "description", "created_at"}
    assert body["name"] == "Checkout"
    project = Project.objects.get(pk=body["id"])
    assert project.organization == org
    assert project.description == "Payments"


def test_project_list_and_detail_show_the_orgs_projects(api, org):
    project = ProjectFactory(organization=org, name="Storefront")
    listing = api.get("/api/v1/projects")
    assert listing.status_code == 200
    assert [row["id"] for row in listing.json()["results"]] == [str(project.id)]
    detail = api.get(f"/api/v1/projects/{project.id}")
    assert detail.status_code == 200
    assert detail.json()["name"] == "Storefront"


PROJECT_BAD_BODIES = {
    "missing name": ({}, "name"),
    "blank name": ({"name": ""}, "name"),
    "whitespace name": ({"name": "   "}, "name"),
    "name too long": ({"name": "x" * 201}, "name"),
    "name is an object": ({"name": {"first": "x"}}, "name"),
    "name is a list": ({"name": ["x"]}, "name"),
    "name is a boolean": ({"name": True}, "name"),
    "name is null": ({"name": None}, "name"),
    "description too long": ({"name": "Ok", "description": "x" * 2001}, "description"),
    "description is a list": ({"name": "Ok", "description": ["x"]}, "description"),
}


@pytest.mark.parametrize(
    ("body", "field"), PROJECT_BAD_BODIES.values(), ids=PROJECT_BAD_BODIES.keys()
)
def test_project_create_refuses_invalid_fields(api, org, body, field):
    before = stored_state()
    problem = assert_problem(
        api.post("/api/v1/projects", body, format="json"), 400, "validation_error"
    )
    assert field in [error["field"] for error in problem["errors"]]
    assert all({"field", "code", "detail"} <= set(error) for error in problem["errors"])
    assert stored_state() == before


def test_project_create_accepts_the_longest_name(api):
    assert api.post("/api/v1/projects", {"name": "x" * 200}, format="json").status_code == 201


def test_project_create_refuses_malformed_json(api):
    before = stored_state()
    response = api.post("/api/v1/projects", '{"name": "x"', content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert stored_state() == before


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        ("application/x-www-form-urlencoded", "name=Checkout"),
        ("text/plain", '{"name": "Checkout"}'),
        ("application/xml", "<name>Checkout</name>"),
    ],
)
def test_project_create_refuses_other_content_types(api, content_type, payload):
    before = stored_state()
    response = api.post("/api/v1/projects", payload, content_type=content_type)
    assert_problem(response, 415, "unsupported_media_type")
    assert stored_state() == before


@pytest.mark.parametrize("payload", ['[{"name": "Checkout"}]', '"Checkout"', "42", "null"])
def test_project_create_refuses_a_body_that_is_not_an_object(api, payload):
    before = stored_state()
    response = api.post("/api/v1/projects", payload, content_type="application/json")
    assert response.status_code == 400
    assert_problem(response, 400, "validation_error")
    assert stored_state() == before


def test_project_create_refuses_a_duplicate_name(api, org):
    ProjectFactory(organization=org, name="Checkout")
    before = stored_state()
    response = api.post("/api/v1/projects", {"name": "Checkout"}, format="json")
    problem = assert_problem(response, 409, "project_name_taken")
    assert problem["errors"][0]["field"] == "name"
    assert stored_state() == before


def test_project_names_are_unique_per_org_not_globally(api, other_org):
    ProjectFactory(organization=other_org, name="Checkout")
    assert api.post("/api/v1/projects", {"name": "Checkout"}, format="json").status_code == 201


@pytest.mark.parametrize(
    "project_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-000000000000", "%20"]
)
def test_project_detail_of_unknown_or_malformed_id_is_404(api, project_id):
    assert_problem(api.get(f"/api/v1/projects/{project_id}"), 404, "not_found")


# --- Tenant isolation: projects and audit log --------------------------------------------
def test_other_org_cannot_see_projects_in_list_or_detail(other_api, org):
    project = ProjectFactory(organization=org)
    listing = other_api.get("/api/v1/projects")
    assert listing.status_code == 200
    assert listing.json()["results"] == []
    assert_problem(other_api.get(f"/api/v1/projects/{project.id}"), 404, "not_found")


def test_other_org_cannot_read_the_audit_log(api, other_api, org):
    api.post("/api/v1/projects", {"name": "Secret plans"}, format="json")
    entry = AuditLogEntry.objects.get(organization=org)
    listing = other_api.get("/api/v1/audit-log")
    assert listing.json()["results"] == []
    assert other_api.get(f"/api/v1/audit-log?target_id={entry.target_id}").json()["results"] == []
    exported = b"".join(other_api.get("/api/v1/audit-log?format=csv").streaming_content)
    assert b"Secret plans" not in exported
    assert len(exported.decode().splitlines()) == 1


# --- Audit log API -----------------------------------------------------------------------
@pytest.fixture
def audit_history(org):
    """Four rows at known times by two actors, and one row of another org."""
    now = timezone.now()
    rows = [
        ("project.created", "alice@example.com", "p1", now - timedelta(days=3)),
        ("key.created", "alice@example.com", "k1", now - timedelta(days=2)),
        ("key.rotated", "token:ci (tg_org_abc)", "k1", now - timedelta(days=1)),
        ("key.revoked", "token:ci (tg_org_abc)", "k2", now - timedelta(hours=1)),
    ]
    for action, actor, target_id, created_at in rows:
        AuditLogEntry.objects.create(
            organization=org,
            actor_type="user",
            actor_label=actor,
            action=action,
            target_type="keys.ApiKey",
            target_id=target_id,
            created_at=created_at,
        )
    AuditLogEntry.objects.create(
        organization=OrganizationFactory(),
        actor_type="user",
        actor_label="alice@example.com",
        action="key.created",
        target_id="k1",
    )
    return now


def _actions(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["action"] for row in response.json()["results"]]


def test_audit_log_lists_newest_first(api, audit_history):
    assert _actions(api.get("/api/v1/audit-log")) == [
        "key.revoked",
        "key.rotated",
        "key.created",
        "project.created",
    ]


def test_audit_log_filters_by_action_prefix(api, audit_history):
    assert _actions(api.get("/api/v1/audit-log?action=key.")) == [
        "key.revoked",
        "key.rotated",
        "key.created",
    ]
    assert _actions(api.get("/api/v1/audit-log?action=key.rotated")) == ["key.rotated"]


def test_audit_log_filters_by_actor(api, audit_history):
    assert _actions(api.get("/api/v1/audit-log?actor=ALICE")) == ["key.created", "project.created"]


def test_audit_log_filters_by_target_id(api, audit_history):
    assert _actions(api.get("/api/v1/audit-log?target_id=k1")) == ["key.rotated", "key.created"]


def test_audit_log_filters_by_time_window(api, audit_history):
    since = (audit_history - timedelta(days=2, hours=1)).isoformat()
    until = (audit_history - timedelta(hours=2)).isoformat()
    response = api.get("/api/v1/audit-log", {"since": since, "until": until})
    assert _actions(response) == ["key.rotated", "key.created"]


@pytest.mark.parametrize(
    "query",
    [
        "since=garbage",
        "until=yesterday",
        "since=2024-13-45T00:00:00Z",
        "format=xml",
        f"action={'x' * 101}",
    ],
)
def test_audit_log_refuses_bad_filter_values(api, audit_history, query):
    problem = assert_problem(api.get(f"/api/v1/audit-log?{query}"), 400, "validation_error")
    assert problem["errors"][0]["field"] == query.partition("=")[0]


def test_audit_log_cursor_pagination_visits_every_row_once(api, audit_history):
    seen = []
    url = "/api/v1/audit-log?limit=3"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200
        page = response.json()
        assert len(page["results"]) <= 3
        seen.extend(row["id"] for row in page["results"])
        url = page["next"]
        pages += 1
    assert pages == 2
    assert len(seen) == len(set(seen)) == 4


def test_audit_log_csv_export_streams_a_header_and_every_row(api, audit_history):
    response = api.get("/api/v1/audit-log?format=csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response["X-Request-Id"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, data = rows[0], rows[1:]
    assert header[:5] == ["id", "created_at", "actor_type", "actor", "action"]
    assert [row[header.index("action")] for row in data] == [
        "key.revoked",
        "key.rotated",
        "key.created",
        "project.created",
    ]


def test_audit_log_csv_export_respects_filters(api, audit_history):
    response = api.get("/api/v1/audit-log?format=csv&action=key.&actor=token")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    action = rows[0].index("action")
    assert [row[action] for row in rows[1:]] == ["key.revoked", "key.rotated"]


def test_audit_log_csv_export_with_bad_filter_is_a_json_problem(api, audit_history):
    assert_problem(api.get("/api/v1/audit-log?format=csv&since=garbage"), 400, "validation_error")


def test_audit_log_json_format_is_the_default_list(api, audit_history):
    assert len(_actions(api.get("/api/v1/audit-log?format=json"))) == 4


# --- Health, schema and docs -------------------------------------------------------------
def test_health_reports_database_and_cache_ok_without_a_token(db, anonymous_api):
    response = anonymous_api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_health_ignores_a_bad_token(db, anonymous_api):
    response = anonymous_api.get("/api/v1/health", HTTP_AUTHORIZATION="Bearer nonsense")
    assert response.status_code == 200


def test_health_is_degraded_when_the_cache_is_down(db, anonymous_api, monkeypatch):
    def unavailable():
        raise ConnectionError("redis down")

    monkeypatch.setattr("portal.api.get_redis", unavailable)
    response = anonymous_api.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "cache": "unavailable"}


EXPECTED_API_PATHS = {
    "/api/v1/health",
    "/api/v1/projects",
    "/api/v1/projects/{project_id}",
    "/api/v1/keys",
    "/api/v1/keys/{key_id}",
    "/api/v1/keys/{key_id}/rotate",
    "/api/v1/keys/{key_id}/revoke",
    "/api/v1/audit-log",
}


def test_schema_is_a_valid_openapi_document_in_yaml(anonymous_api):
    response = anonymous_api.get("/api/v1/schema")
    assert response.status_code == 200
    assert "openapi" in response["Content-Type"]
    document = yaml.safe_load(response.content)
    validate_schema(document)
    assert document["info"]["title"] == "Tollgate management API"
    assert set(document["paths"]) >= EXPECTED_API_PATHS
    assert not [path for path in document["paths"] if path.endswith("/")]


def test_schema_is_available_as_json(anonymous_api):
    response = anonymous_api.get("/api/v1/schema?format=json")
    assert response.status_code == 200
    document = json.loads(response.content)
    validate_schema(document)
    assert set(document["paths"]) >= EXPECTED_API_PATHS
    assert document["paths"]["/api/v1/keys/{key_id}/rotate"]["post"]["operationId"] == (
        "keys_rotate"
    )


def test_schema_generates_without_warnings_and_names_its_version(tmp_path):
    # drf-spectacular only warns (a guessed type, a name collision) and still writes a
    # schema; --fail-on-warn turns any warning into an error, as CI runs it.
    from django.core.management import call_command
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert not GENERATOR_STATS
    document = yaml.safe_load(target.read_text())
    assert document["info"]["version"] == "1.0.0"
    assert all(path.startswith("/api/v1/") for path in document["paths"])


ASSET_ATTRIBUTE = re.compile(r"<(script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", re.I)


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/redoc"])
def test_docs_pages_load_only_local_static_assets(anonymous_api, path, settings):
    response = anonymous_api.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSET_ATTRIBUTE.findall(html)
    assert any(tag == "script" for tag, _url in assets)
    for _tag, url in assets:
        if url == f"{path}?script=":  # Swagger UI's start-up script, served by the view (CSP)
            script = anonymous_api.get(url).content.decode()
            assert "/api/v1/schema" in script and not re.search(r"https?://", script)
            continue
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a local static file"
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", html, re.I)
    if path.endswith("redoc"):
        assert "/api/v1/schema" in html


def test_swagger_ui_does_not_call_the_online_validator(anonymous_api):
    # Left unset, Swagger UI shows a badge image from validator.swagger.io with the schema URL.
    script = anonymous_api.get("/api/v1/docs?script=").content.decode()
    assert re.search(r'"validatorUrl":\s*null', script)
