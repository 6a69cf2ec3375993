"""The SDK against the running app: real HTTP to live_server, real PostgreSQL."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from tollgate_sdk import (
    AsyncTollgate,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Tollgate,
    UnprocessableError,
)

from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_creates_a_project_and_issues_a_key_whose_secret_is_shown_once(sdk):
    project = sdk.projects.create(name="Payments", description="Card API")
    assert project["name"] == "Payments"
    assert sdk.projects.retrieve(project["id"]) == project

    issued = sdk.keys.create(project=project["id"], name="server", environment="test")
    assert issued["key"].startswith("tg_test_")
    assert issued["project"] == project["id"]
    assert issued["status"] == "active"

    read_back = sdk.keys.retrieve(issued["id"])
    assert "key" not in read_back
    assert read_back["prefix"] == issued["prefix"]


def test_rotating_and_revoking_a_key(sdk, org):
    project = ProjectFactory(organization=org)
    first = sdk.keys.create(project=str(project.id), name="ci", environment="live")

    second = sdk.keys.rotate(first["id"], grace_period_seconds=0)
    assert second["id"] != first["id"]
    assert second["key"] != first["key"]
    assert sdk.keys.retrieve(first["id"])["replaced_by"] == second["id"]

    revoked = sdk.keys.revoke(second["id"])
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"] is not None


def test_iterate_follows_the_cursor_across_pages(sdk, org, other_org):
    created = [ProjectFactory(organization=org, name=f"Project {n}") for n in range(7)]
    ProjectFactory(organization=other_org, name="Not ours")

    first_page = sdk.projects.list(limit=3)
    assert len(first_page) == 3
    assert first_page.has_more
    second_page = sdk.projects.list(limit=3, cursor=first_page.next_cursor)
    assert {p["id"] for p in first_page}.isdisjoint({p["id"] for p in second_page})

    every = list(sdk.projects.iterate(page_size=3))  # three requests: 3 + 3 + 1
    assert [p["id"] for p in every] == [str(p.id) for p in reversed(created)]

    last_page = sdk.projects.list(limit=10)
    assert len(last_page) == 7
    assert not last_page.has_more


def test_key_filters_reach_the_api(sdk, org):
    project = ProjectFactory(organization=org)
    sdk.keys.create(project=str(project.id), name="a", environment="test")
    live = sdk.keys.create(project=str(project.id), name="b", environment="live")

    assert [key["id"] for key in sdk.keys.iterate(environment="live")] == [live["id"]]
    assert len(list(sdk.keys.iterate(project=str(project.id), page_size=1))) == 2


def test_usage_sent_twice_with_one_idempotency_key_is_counted_once(sdk, operator_sdk, org):
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    events = [
        {"id": f"call-{n}", "meter": "requests", "customer": org.slug, "timestamp": hour_ago}
        for n in range(3)
    ]

    first = operator_sdk.usage.ingest(events, idempotency_key="nightly-batch-7")
    again = operator_sdk.raw_request(
        "POST", "/usage/events", json={"events": events}, idempotency_key="nightly-batch-7"
    )

    assert first == {"accepted": 3, "duplicates": 0, "rejected": []}
    # The stored answer is replayed, not recomputed (which would say 3 duplicates).
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first

    usage = sdk.usage.query(
        meter="requests", start=hour_ago - timedelta(hours=1), end=datetime.now(UTC)
    )
    assert usage["meter"] == "requests"
    assert [row["quantity"] for row in usage["results"]] == ["3"]


def test_the_same_idempotency_key_with_another_body_is_refused(operator_sdk, org):
    event = {"id": "one", "meter": "requests", "customer": org.slug}
    operator_sdk.usage.ingest([event], idempotency_key="batch-1")

    with pytest.raises(UnprocessableError) as raised:
        operator_sdk.usage.ingest([{**event, "id": "two"}], idempotency_key="batch-1")
    assert raised.value.code == "idempotency_key_reused"
    assert raised.value.status == 422


def test_every_post_gets_an_idempotency_key_the_app_replays(sdk):
    key = str(uuid.uuid4())
    first = sdk.projects.create(name="Once", idempotency_key=key)
    second = sdk.projects.create(name="Once", idempotency_key=key)
    assert second["id"] == first["id"]
    # Without a caller's key each call gets a fresh one, so two calls are two actions.
    third = sdk.projects.create(name="Twice")
    assert third["id"] != first["id"]


def test_a_conflict_is_raised_at_once_with_its_code(sdk):
    sdk.projects.create(name="Payments")
    with pytest.raises(ConflictError) as raised:
        sdk.projects.create(name="Payments")
    assert raised.value.code == "project_name_taken"
    assert raised.value.status == 409


def test_a_missing_object_raises_not_found_with_its_code_and_request_id(sdk):
    with pytest.raises(NotFoundError) as raised:
        sdk.projects.retrieve(str(uuid.uuid4()))
    error = raised.value
    assert error.status == 404
    assert error.code == "not_found"
    assert error.request_id.startswith("req_")
    assert error.detail


def test_another_orgs_object_is_not_found_too(sdk, other_org):
    foreign = ProjectFactory(organization=other_org)
    with pytest.raises(NotFoundError):
        sdk.projects.retrieve(str(foreign.id))


def test_a_validation_error_carries_the_field_errors(sdk, org):
    project = ProjectFactory(organization=org)
    with pytest.raises(BadRequestError) as raised:
        sdk.keys.create(project=str(project.id), name="bad", environment="prod")  # type: ignore[arg-type]
    error = raised.value
    assert error.code == "validation_error"
    assert [entry["field"] for entry in error.errors] == ["environment"]


def test_an_unknown_token_raises_authentication_error(live_server, db):
    client = Tollgate(token="tg_org_" + "x" * 40, base_url=live_server.url)
    with client, pytest.raises(AuthenticationError) as raised:
        client.projects.list()
    assert raised.value.code == "invalid_token"
    assert raised.value.status == 401


def test_an_org_token_on_an_operator_endpoint_is_the_wrong_kind(sdk):
    with pytest.raises(PermissionDeniedError) as raised:
        sdk.usage.ingest([{"id": "x", "meter": "requests"}])
    assert raised.value.code == "wrong_token_kind"


def test_public_catalogs_read_through_resource_groups(sdk):
    assert "requests" in {meter["code"] for meter in sdk.meters.list()}
    event_types = sdk.event_types.list()
    assert event_types
    assert all({"name", "version", "schema"} <= set(item) for item in event_types)


def test_webhook_endpoint_secret_is_shown_once(sdk):
    created = sdk.webhook_endpoints.create(url="https://hooks.example.com/tg", environment="test")
    assert created["secret"].startswith("whsec_")
    listed = list(sdk.webhook_endpoints.iterate())
    assert [item["id"] for item in listed] == [created["id"]]
    assert "secret" not in listed[0]


def test_the_async_client_pages_and_raises_typed_errors(live_server, org_token, org):
    ProjectFactory.create_batch(3, organization=org)

    async def scenario() -> tuple[list[dict], str]:
        async with AsyncTollgate(token=org_token.raw_token, base_url=live_server.url) as client:
            projects = [item async for item in client.iterate("/projects", page_size=2)]
            try:
                await client.request("GET", f"/projects/{uuid.uuid4()}")
            except NotFoundError as error:
                return projects, error.code
            return projects, "no error"

    # In a thread of its own: a Playwright session elsewhere in the run may hold this
    # thread's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        projects, code = pool.submit(asyncio.run, scenario()).result()
    assert len(projects) == 3
    assert code == "not_found"


def test_base_url_may_name_the_api_prefix_itself(live_server, org_token, org):
    with Tollgate(token=org_token.raw_token, base_url=live_server.url + "/api/v1/") as client:
        assert client.projects.list().results == []


def test_a_real_idempotency_key_in_use_answer_is_waited_out(make_sdk, org_token, meters):
    """The app answers 409 idempotency_key_in_use while an earlier attempt with the key is
    in flight; the SDK waits and sends the same request again."""
    import hashlib

    from tollgate_sdk._http import encode_json

    from common.models import IdempotencyRecord

    body = encode_json({"name": "Payments"})  # the exact bytes the SDK sends
    path = "/api/v1/projects"
    in_flight = IdempotencyRecord.objects.create(
        scope_hash=hashlib.sha256(f"Bearer {org_token.raw_token}".encode()).hexdigest(),
        key="create-payments",
        request_fingerprint=hashlib.sha256(b"POST" + path.encode() + body).hexdigest(),
        method="POST",
        path=path,
    )
    waits: list[float] = []

    def earlier_attempt_fails_meanwhile(seconds: float) -> None:
        # A 5xx first attempt deletes its record, so the next retry runs afresh.
        waits.append(seconds)
        in_flight.delete()

    sdk = make_sdk(org_token, sleep=earlier_attempt_fails_meanwhile)
    project = sdk.projects.create(name="Payments", idempotency_key="create-payments")

    assert project["name"] == "Payments"
    assert len(waits) == 1
    assert not IdempotencyRecord.objects.filter(status_code__isnull=True).exists()
