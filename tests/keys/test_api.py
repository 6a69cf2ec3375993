"""The keys API: issuing, reading, rotating and revoking keys, its bad inputs and tenant isolation.

Credentials and scopes for these endpoints are covered in tests/portal/test_api.py.
"""

import hashlib
import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from common.models import IdempotencyRecord
from keys.format import key_is_well_formed
from keys.models import ApiKey
from keys.selectors import key_check
from portal.models import AuditLogEntry, Project
from tests.factories import ApiKeyFactory, ProjectFactory

PROBLEM_CONTENT_TYPE = "application/problem+json"
KEY_FIELDS = {
    "id",
    "name",
    "prefix",
    "project",
    "environment",
    "scopes",
    "expires_at",
    "allowed_cidrs",
    "status",
    "created_at",
    "last_used_at",
    "revoked_at",
    "grace_ends_at",
    "replaced_by",
}


def assert_problem(response, status: int, code: str) -> dict:
    """An RFC 9457 document with a stable code and the request id of its response."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response["X-Request-Id"]
    assert body["title"]
    assert body["detail"]
    return body


def error_fields(problem: dict) -> list[str | None]:
    return [error["field"] for error in problem.get("errors", [])]


def stored_keys() -> dict:
    """Key rows, their state and the rows a key change writes, to compare before and after."""
    return {
        "keys": list(
            ApiKey.objects.order_by("id").values_list(
                "id", "name", "revoked_at", "grace_ends_at", "replaced_by_id", "expires_at"
            )
        ),
        "projects": Project.objects.count(),
        "audit_rows": AuditLogEntry.objects.count(),
        "idempotency_records": IdempotencyRecord.objects.count(),
    }


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org, name="Storefront")


@pytest.fixture
def key(project):
    return ApiKeyFactory(project=project)


def create_key(api, project, **fields):
    body = {"project": str(project.id), "name": "ci", "environment": "test", **fields}
    return api.post("/api/v1/keys", body, format="json")


# --- Issuing -----------------------------------------------------------------------------
def test_created_key_is_returned_once_with_its_secret(api, project):
    response = create_key(api, project, scopes=["write", "read", "read"], environment="live")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == KEY_FIELDS | {"key"}
    assert key_is_well_formed(body["key"])
    assert body["key"].startswith("tg_live_")
    assert body["key"].startswith(body["prefix"])
    assert body["prefix"] == body["key"][: len("tg_live_") + 8]
    assert body["status"] == "active"
    assert body["scopes"] == ["read", "write"]
    assert body["project"] == str(project.id)


def test_key_secret_never_appears_in_list_or_detail(api, project):
    raw = create_key(api, project).json()
    listing = api.get("/api/v1/keys")
    detail = api.get(f"/api/v1/keys/{raw['id']}")
    for row in [*listing.json()["results"], detail.json()]:
        assert set(row) == KEY_FIELDS
    assert raw["key"].encode() not in listing.content
    assert raw["key"].encode() not in detail.content


def test_key_is_stored_only_as_its_hash_and_prefix(api, project):
    body = create_key(api, project).json()
    secret = body["key"]
    stored = ApiKey.objects.filter(pk=body["id"]).values().get()
    assert stored["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["prefix"] == body["prefix"]
    assert secret not in json.dumps(stored, default=str)
    audit = AuditLogEntry.objects.filter(target_id=body["id"]).values()
    assert audit
    assert secret not in json.dumps(list(audit), default=str)
    assert stored["key_hash"] not in json.dumps(list(audit), default=str)


def test_created_key_passes_the_key_check(api, project):
    secret = create_key(api, project).json()["key"]
    check = key_check(raw_key=secret)
    assert check.allowed
    assert check.code == "ok"


def test_key_create_keeps_normalised_cidrs_and_future_expiry(api, project):
    expires_at = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = create_key(
        api,
        project,
        allowed_cidrs=["10.1.2.3/8", "2001:db8::1/32"],
        expires_at=expires_at.isoformat(),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["allowed_cidrs"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert ApiKey.objects.get(pk=body["id"]).expires_at == expires_at


def _in_the_past():
    return (timezone.now() - timedelta(minutes=1)).isoformat()


KEY_BAD_BODIES = {
    "missing everything": (lambda p: {}, {"project", "name", "environment"}),
    "missing name": (lambda p: {"project": p, "environment": "test"}, {"name"}),
    "missing environment": (lambda p: {"project": p, "name": "ci"}, {"environment"}),
    "missing project": (lambda p: {"name": "ci", "environment": "test"}, {"project"}),
    "blank name": (lambda p: {"project": p, "name": "  ", "environment": "test"}, {"name"}),
    "name too long": (
        lambda p: {"project": p, "name": "x" * 201, "environment": "test"},
        {"name"},
    ),
    "name is an object": (
        lambda p: {"project": p, "name": {"x": 1}, "environment": "test"},
        {"name"},
    ),
    "bad environment": (
        lambda p: {"project": p, "name": "ci", "environment": "prod"},
        {"environment"},
    ),
    "upper-case environment": (
        lambda p: {"project": p, "name": "ci", "environment": "TEST"},
        {"environment"},
    ),
    "environment is a number": (
        lambda p: {"project": p, "name": "ci", "environment": 1},
        {"environment"},
    ),
    "project is not a uuid": (
        lambda p: {"project": "storefront", "name": "ci", "environment": "test"},
        {"project"},
    ),
    "project is a list": (
        lambda p: {"project": [p], "name": "ci", "environment": "test"},
        {"project"},
    ),
    "scopes is a string": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "scopes": "read"},
        {"scopes"},
    ),
    "empty scopes": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "scopes": []},
        {"scopes"},
    ),
    "too many scopes": (
        lambda p: {
            "project": p,
            "name": "ci",
            "environment": "test",
            "scopes": [f"s{i}" for i in range(51)],
        },
        {"scopes"},
    ),
    "blank scope": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "scopes": ["read", ""]},
        {"scopes[1]"},
    ),
    "overlong scope": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "scopes": ["a" * 51]},
        {"scopes[0]"},
    ),
    "cidrs is a string": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "allowed_cidrs": "10/8"},
        {"allowed_cidrs"},
    ),
    "expiry is not a date": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "expires_at": "soon"},
        {"expires_at"},
    ),
    "expiry is a number": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "expires_at": 1893456000},
        {"expires_at"},
    ),
    "naive expiry": (
        lambda p: {
            "project": p,
            "name": "ci",
            "environment": "test",
            "expires_at": "2099-01-01T00:00:00",
        },
        {"expires_at"},
    ),
    "expiry in the past": (
        lambda p: {"project": p, "name": "ci", "environment": "test", "expires_at": _in_the_past()},
        {"expires_at"},
    ),
}


@pytest.mark.parametrize(("body", "fields"), KEY_BAD_BODIES.values(), ids=KEY_BAD_BODIES.keys())
def test_key_create_refuses_invalid_fields(api, project, body, fields):
    before = stored_keys()
    response = api.post("/api/v1/keys", body(str(project.id)), format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert set(error_fields(problem)) == fields
    assert stored_keys() == before


@pytest.mark.parametrize(
    "scopes",
    [["Read"], ["has space"], ["1read"], ["read", "wr!te"], [7], ["ünicode"]],
    ids=["upper-case", "space", "leading digit", "punctuation", "number", "non-ascii"],
)
def test_key_create_refuses_invalid_scope_strings(api, project, scopes):
    before = stored_keys()
    problem = assert_problem(create_key(api, project, scopes=scopes), 400, "invalid_scope")
    assert error_fields(problem) == ["scopes"]
    assert stored_keys() == before


@pytest.mark.parametrize(
    "cidrs",
    [["10.0.0.0/33"], ["not-a-cidr"], ["10.0.0.0/8", "fe80::/129"], ["300.1.2.3"], ["10.0.0.0/-1"]],
)
def test_key_create_refuses_bad_cidrs(api, project, cidrs):
    before = stored_keys()
    problem = assert_problem(create_key(api, project, allowed_cidrs=cidrs), 400, "invalid_cidr")
    assert error_fields(problem) == ["allowed_cidrs"]
    assert stored_keys() == before


def test_key_create_refuses_malformed_json(api, project):
    before = stored_keys()
    response = api.post("/api/v1/keys", '{"project": ', content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert stored_keys() == before


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_key_create_refuses_other_content_types(api, project, content_type):
    before = stored_keys()
    payload = json.dumps({"project": str(project.id), "name": "ci", "environment": "test"})
    response = api.post("/api/v1/keys", payload, content_type=content_type)
    assert_problem(response, 415, "unsupported_media_type")
    assert stored_keys() == before


def test_key_create_refuses_a_json_list(api, project):
    before = stored_keys()
    payload = json.dumps([{"project": str(project.id), "name": "ci", "environment": "test"}])
    response = api.post("/api/v1/keys", payload, content_type="application/json")
    assert_problem(response, 400, "validation_error")
    assert stored_keys() == before


def test_key_create_in_unknown_project_is_404(api):
    before = stored_keys()
    response = api.post(
        "/api/v1/keys",
        {"project": str(uuid.uuid4()), "name": "ci", "environment": "test"},
        format="json",
    )
    assert_problem(response, 404, "not_found")
    assert stored_keys() == before


# --- Reading and filtering ---------------------------------------------------------------
def test_key_list_filters_by_project_and_environment(api, org, project):
    other_project = ProjectFactory(organization=org)
    test_key = ApiKeyFactory(project=project, environment="test")
    live_key = ApiKeyFactory(project=project, environment="live")
    elsewhere = ApiKeyFactory(project=other_project, environment="test")

    def ids(query):
        response = api.get("/api/v1/keys", query)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids({}) == {str(test_key.id), str(live_key.id), str(elsewhere.id)}
    assert ids({"project": str(project.id)}) == {str(test_key.id), str(live_key.id)}
    assert ids({"environment": "live"}) == {str(live_key.id)}
    assert ids({"project": str(other_project.id), "environment": "live"}) == set()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("environment=prod", "environment"),
        ("project=storefront", "project"),
        ("project=42", "project"),
    ],
)
def test_key_list_refuses_bad_filter_values(api, key, query, field):
    problem = assert_problem(api.get(f"/api/v1/keys?{query}"), 400, "validation_error")
    assert error_fields(problem) == [field]


@pytest.mark.parametrize("suffix", ["", "/rotate", "/revoke"])
@pytest.mark.parametrize(
    "key_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-000000000000"], ids=str
)
def test_unknown_or_malformed_key_id_is_404(api, key, key_id, suffix):
    before = stored_keys()
    url = f"/api/v1/keys/{key_id}{suffix}"
    response = api.post(url, {}, format="json") if suffix else api.get(url)
    assert_problem(response, 404, "not_found")
    assert stored_keys() == before


# --- Rotation and revocation -------------------------------------------------------------
def test_rotation_returns_a_successor_and_the_old_key_keeps_working(api, key):
    response = api.post(
        f"/api/v1/keys/{key.id}/rotate", {"grace_period_seconds": 3600}, format="json"
    )
    assert response.status_code == 201, response.content
    new = response.json()
    assert set(new) == KEY_FIELDS | {"key"}
    assert new["id"] != str(key.id)
    assert new["key"] != key.raw_key
    assert new["name"] == key.name
    assert new["status"] == "active"
    old = api.get(f"/api/v1/keys/{key.id}").json()
    assert old["status"] == "rotating"
    assert old["replaced_by"] == new["id"]
    assert key_check(raw_key=key.raw_key).allowed
    assert key_check(raw_key=new["key"]).allowed


def test_rotation_without_a_body_uses_a_one_day_grace_period(api, key):
    before = timezone.now()
    assert api.post(f"/api/v1/keys/{key.id}/rotate").status_code == 201
    key.refresh_from_db()
    assert before + timedelta(days=1) <= key.grace_ends_at <= timezone.now() + timedelta(days=1)


def test_rotation_with_zero_grace_expires_the_old_key_at_once(api, key):
    response = api.post(f"/api/v1/keys/{key.id}/rotate", {"grace_period_seconds": 0}, format="json")
    assert response.status_code == 201
    assert api.get(f"/api/v1/keys/{key.id}").json()["status"] == "expired"
    assert key_check(raw_key=key.raw_key).code == "key_expired"
    assert key_check(raw_key=response.json()["key"]).allowed


@pytest.mark.parametrize("grace", [0, 2592000])
def test_rotation_accepts_the_grace_period_bounds(api, key, grace):
    response = api.post(
        f"/api/v1/keys/{key.id}/rotate", {"grace_period_seconds": grace}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "grace",
    [-1, 2592001, 10**20, 1.5, "soon", True, None, [60], {"seconds": 60}],
    ids=str,
)
def test_rotation_refuses_a_bad_grace_period(api, key, grace):
    before = stored_keys()
    response = api.post(
        f"/api/v1/keys/{key.id}/rotate", {"grace_period_seconds": grace}, format="json"
    )
    problem = assert_problem(response, 400, "validation_error")
    assert error_fields(problem) == ["grace_period_seconds"]
    assert stored_keys() == before


def test_rotation_refuses_malformed_json_wrong_content_type_and_lists(api, key):
    before = stored_keys()
    url = f"/api/v1/keys/{key.id}/rotate"
    assert_problem(api.post(url, "{", content_type="application/json"), 400, "malformed_request")
    assert_problem(
        api.post(url, "grace_period_seconds=60", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    assert_problem(api.post(url, "[60]", content_type="application/json"), 400, "validation_error")
    assert stored_keys() == before


def test_rotation_of_a_revoked_key_is_a_conflict(api, key):
    api.post(f"/api/v1/keys/{key.id}/revoke")
    before = stored_keys()
    assert_problem(api.post(f"/api/v1/keys/{key.id}/rotate"), 409, "key_not_active")
    assert stored_keys() == before
    assert key_check(raw_key=key.raw_key).code == "key_revoked"


def test_rotation_of_a_rotating_key_is_a_conflict(api, key):
    api.post(f"/api/v1/keys/{key.id}/rotate")
    before = stored_keys()
    assert_problem(api.post(f"/api/v1/keys/{key.id}/rotate"), 409, "key_not_active")
    assert stored_keys() == before


def test_rotation_of_an_expired_key_is_a_conflict(api, project):
    key = ApiKeyFactory(project=project, expires_at=timezone.now() - timedelta(seconds=1))
    before = stored_keys()
    assert_problem(api.post(f"/api/v1/keys/{key.id}/rotate"), 409, "key_not_active")
    assert stored_keys() == before


def test_revocation_takes_effect_on_the_next_check(api, key):
    response = api.post(f"/api/v1/keys/{key.id}/revoke")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == KEY_FIELDS
    assert body["status"] == "revoked"
    assert body["revoked_at"]
    assert key_check(raw_key=key.raw_key).code == "key_revoked"


def test_revoking_twice_changes_nothing_the_second_time(api, key):
    first = api.post(f"/api/v1/keys/{key.id}/revoke").json()
    before = stored_keys()
    second = api.post(f"/api/v1/keys/{key.id}/revoke")
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first["revoked_at"]
    assert stored_keys() == before


def test_revoking_a_rotating_key_stops_it_before_its_grace_period_ends(api, key):
    api.post(f"/api/v1/keys/{key.id}/rotate", {"grace_period_seconds": 3600}, format="json")
    api.post(f"/api/v1/keys/{key.id}/revoke")
    assert key_check(raw_key=key.raw_key).code == "key_revoked"


def test_revocation_refuses_a_malformed_or_non_json_body(api, key):
    url = f"/api/v1/keys/{key.id}/revoke"
    before = stored_keys()
    assert_problem(api.post(url, "{", content_type="application/json"), 400, "malformed_request")
    assert_problem(api.post(url, "yes", content_type="text/plain"), 415, "unsupported_media_type")
    assert_problem(api.post(url, "[]", content_type="application/json"), 400, "validation_error")
    assert stored_keys() == before
    assert key_check(raw_key=key.raw_key).allowed


def test_key_status_goes_active_rotating_expired_and_revoked(api, key):
    def status():
        return api.get(f"/api/v1/keys/{key.id}").json()["status"]

    assert status() == "active"
    api.post(f"/api/v1/keys/{key.id}/rotate", {"grace_period_seconds": 60}, format="json")
    assert status() == "rotating"
    ApiKey.objects.filter(pk=key.pk).update(grace_ends_at=timezone.now() - timedelta(seconds=1))
    assert status() == "expired"
    api.post(f"/api/v1/keys/{key.id}/revoke")
    assert status() == "revoked"


# --- Tenant isolation --------------------------------------------------------------------
def test_other_org_does_not_see_the_keys_in_its_list(other_api, key, project):
    assert other_api.get("/api/v1/keys").json()["results"] == []
    filtered = other_api.get(f"/api/v1/keys?project={project.id}")
    assert filtered.status_code == 200
    assert filtered.json()["results"] == []


def test_other_org_cannot_read_rotate_or_revoke_a_key(other_api, key):
    before = stored_keys()
    assert_problem(other_api.get(f"/api/v1/keys/{key.id}"), 404, "not_found")
    assert_problem(other_api.post(f"/api/v1/keys/{key.id}/rotate"), 404, "not_found")
    assert_problem(other_api.post(f"/api/v1/keys/{key.id}/revoke"), 404, "not_found")
    assert stored_keys() == before
    assert key_check(raw_key=key.raw_key).allowed


@pytest.mark.parametrize(
    "body",
    [{"grace_period_seconds": -5}, {"grace_period_seconds": "x"}, "{", "[]"],
    ids=["negative grace", "text grace", "malformed json", "list"],
)
def test_other_orgs_key_is_404_before_the_body_is_validated(other_api, key, body):
    before = stored_keys()
    for action in ("rotate", "revoke"):
        url = f"/api/v1/keys/{key.id}/{action}"
        if isinstance(body, dict):
            response = other_api.post(url, body, format="json")
        else:
            response = other_api.post(url, body, content_type="application/json")
        assert_problem(response, 404, "not_found")
    assert stored_keys() == before


def test_other_org_cannot_create_a_key_in_the_project(other_api, project):
    before = stored_keys()
    response = create_key(other_api, project)
    assert_problem(response, 404, "not_found")
    assert stored_keys() == before
    assert not project.keys.exists()


def test_other_orgs_404_looks_the_same_as_a_missing_key(api, other_api, key):
    missing = api.get(f"/api/v1/keys/{uuid.uuid4()}").json()
    foreign = other_api.get(f"/api/v1/keys/{key.id}").json()
    assert {k: v for k, v in missing.items() if k != "request_id"} == {
        k: v for k, v in foreign.items() if k != "request_id"
    }
