"""Idempotency-Key on API POSTs: the first response is stored and replayed for 24 hours."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.idempotency import MAX_KEY_LENGTH, _sha256, purge_expired_records
from common.models import IdempotencyRecord
from common.tasks import purge_idempotency_records
from keys.models import ApiKey
from portal.models import AuditLogEntry, Project
from tests.conftest import bearer_client
from tests.factories import ApiKeyFactory, ApiTokenFactory, ProjectFactory

PROBLEM_CONTENT_TYPE = "application/problem+json"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["request_id"] == response["X-Request-Id"]
    return body


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org)


def post(client, path, body, key, **extra):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def key_body(project, name="ci"):
    return {"project": str(project.id), "name": name, "environment": "test"}


def test_replay_returns_the_same_status_and_body_and_creates_one_row(api, project):
    first = post(api, "/api/v1/keys", key_body(project), "create-ci-key")
    second = post(api, "/api/v1/keys", key_body(project), "create-ci-key")
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert second["X-Request-Id"] != first["X-Request-Id"]
    assert ApiKey.objects.count() == 1
    assert AuditLogEntry.objects.filter(action="key.created").count() == 1


def test_replay_of_a_project_create_does_not_hit_the_duplicate_name_check(api):
    first = post(api, "/api/v1/projects", {"name": "Checkout"}, "p-1")
    second = post(api, "/api/v1/projects", {"name": "Checkout"}, "p-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert Project.objects.count() == 1


def test_replay_works_for_rotation(api, project):
    key = ApiKeyFactory(project=project)
    first = post(api, f"/api/v1/keys/{key.id}/rotate", {}, "rotate-1")
    second = post(api, f"/api/v1/keys/{key.id}/rotate", {}, "rotate-1")
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert ApiKey.objects.count() == 2


def test_a_stored_error_response_is_replayed_too(api):
    first = post(api, "/api/v1/projects", {"name": ""}, "bad-1")
    second = post(api, "/api/v1/projects", {"name": ""}, "bad-1")
    assert first.status_code == second.status_code == 400
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"


def test_same_key_with_a_different_body_is_refused(api, project):
    post(api, "/api/v1/keys", key_body(project, "one"), "k-1")
    response = post(api, "/api/v1/keys", key_body(project, "two"), "k-1")
    assert_problem(response, 422, "idempotency_key_reused")
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["one"]


def test_same_key_on_a_different_path_is_refused(api, project):
    post(api, "/api/v1/projects", {"name": "Checkout"}, "k-1")
    response = post(api, "/api/v1/keys", key_body(project), "k-1")
    assert_problem(response, 422, "idempotency_key_reused")
    assert not ApiKey.objects.exists()


def test_key_in_flight_is_refused_with_409(api, org_token, project):
    path = "/api/v1/projects"
    body = b'{"name": "Checkout"}'
    IdempotencyRecord.objects.create(
        scope_hash=_sha256(f"Bearer {org_token.raw_token}".encode()),
        key="in-flight",
        request_fingerprint=_sha256(b"POST" + path.encode() + body),
        method="POST",
        path=path,
    )
    response = api.post(
        path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="in-flight"
    )
    assert_problem(response, 409, "idempotency_key_in_use")
    assert not Project.objects.filter(name="Checkout").exists()


def test_different_tokens_with_the_same_key_are_independent(api, org, other_api):
    second_token_of_org = bearer_client(ApiTokenFactory(organization=org))
    assert post(api, "/api/v1/projects", {"name": "One"}, "shared").status_code == 201
    assert (
        post(second_token_of_org, "/api/v1/projects", {"name": "Two"}, "shared").status_code == 201
    )
    replay = post(other_api, "/api/v1/projects", {"name": "One"}, "shared")
    assert replay.status_code == 201
    assert "Idempotent-Replayed" not in replay
    assert Project.objects.count() == 3


@pytest.mark.parametrize(
    "key",
    ["x" * (MAX_KEY_LENGTH + 1), "", "tab\there", "bell\x07"],
    ids=["too long", "empty", "tab", "control character"],
)
def test_invalid_idempotency_key_is_refused(api, key):
    response = post(api, "/api/v1/projects", {"name": "Checkout"}, key)
    assert_problem(response, 400, "idempotency_key_invalid")
    assert not Project.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_longest_idempotency_key_is_accepted(api):
    response = post(api, "/api/v1/projects", {"name": "Checkout"}, "x" * MAX_KEY_LENGTH)
    assert response.status_code == 201


def test_unauthenticated_response_is_not_stored(anonymous_api, project):
    response = post(
        anonymous_api,
        "/api/v1/projects",
        {"name": "Checkout"},
        "k-1",
        HTTP_AUTHORIZATION="Bearer tg_org_nonsense",
    )
    assert_problem(response, 401, "invalid_token")
    assert not IdempotencyRecord.objects.exists()


def test_request_without_a_token_is_answered_401_and_not_stored(db, anonymous_api):
    response = post(anonymous_api, "/api/v1/projects", {"name": "Checkout"}, "k-1")
    assert_problem(response, 401, "authentication_required")
    assert not IdempotencyRecord.objects.exists()


def test_server_error_is_not_stored_so_a_retry_runs_again(api, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("portal.services.project_create", crash)
    assert_problem(
        post(api, "/api/v1/projects", {"name": "Checkout"}, "k-1"), 500, "internal_error"
    )
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert post(api, "/api/v1/projects", {"name": "Checkout"}, "k-1").status_code == 201


def test_get_requests_ignore_the_header(api):
    response = api.get("/api/v1/projects", HTTP_IDEMPOTENCY_KEY="x" * 1000)
    assert response.status_code == 200
    assert not IdempotencyRecord.objects.exists()


def test_post_without_the_header_is_not_stored(api):
    api.post("/api/v1/projects", {"name": "Checkout"}, format="json")
    assert not IdempotencyRecord.objects.exists()


def test_expired_record_is_replaced_by_a_new_request(api, project):
    first = post(api, "/api/v1/keys", key_body(project), "daily")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    second = post(api, "/api/v1/keys", key_body(project), "daily")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert second.json()["id"] != first.json()["id"]
    assert ApiKey.objects.count() == 2
    record = IdempotencyRecord.objects.get()
    assert record.created_at > timezone.now() - timedelta(minutes=1)


def test_record_younger_than_a_day_is_still_replayed(api, project):
    post(api, "/api/v1/keys", key_body(project), "daily")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert post(api, "/api/v1/keys", key_body(project), "daily")["Idempotent-Replayed"] == "true"


def _record(key: str, age: timedelta) -> IdempotencyRecord:
    record = IdempotencyRecord.objects.create(
        scope_hash="a" * 64, key=key, request_fingerprint="b" * 64, method="POST", path="/api/v1/x"
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)
    return record


def test_purge_deletes_only_records_older_than_the_window(db):
    _record("old", timedelta(hours=25))
    _record("older", timedelta(days=30))
    _record("fresh", timedelta(hours=23))
    assert purge_expired_records() == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_purge_task_runs_the_purge(db):
    _record("old", timedelta(hours=25))
    assert purge_idempotency_records.delay().get() == 1
    assert not IdempotencyRecord.objects.exists()


def test_stored_response_holding_a_new_key_is_encrypted_at_rest(api, org):
    from common.models import IdempotencyRecord
    from tests.factories import ProjectFactory

    project = ProjectFactory(organization=org)
    body = {"project": str(project.id), "name": "ci", "environment": "test"}
    first = api.post("/api/v1/keys", body, format="json", HTTP_IDEMPOTENCY_KEY="enc-1")
    secret = first.json()["key"]
    stored = bytes(IdempotencyRecord.objects.get(key="enc-1").response_body)
    assert secret.encode() not in stored
    replay = api.post("/api/v1/keys", body, format="json", HTTP_IDEMPOTENCY_KEY="enc-1")
    assert replay.json()["key"] == secret
