"""POST /api/v1/usage/events: idempotent batches, per-event rejections, exact storage."""

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import UsageEvent, UsageEventId, UsageRollup
from tests.factories import ApiKeyFactory, ProjectFactory

URL = "/api/v1/usage/events"


def post(client, events, **extra):
    return client.post(URL, {"events": events}, format="json", **extra)


def requests_events(count, prefix="evt", customer="acme"):
    return [
        {"id": f"{prefix}-{i}", "meter": "requests", "customer": customer} for i in range(count)
    ]


def test_batch_is_accepted_and_stored_in_ledger_and_rollups(operator_api, org, meters):
    response = post(operator_api, requests_events(3))
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert UsageEvent.objects.filter(organization=org).count() == 3
    assert UsageRollup.objects.get(organization=org).quantity_sum == 3


def test_same_batch_posted_twice_counts_once(store_path, operator_api, org, meters):
    events = requests_events(5)
    post(operator_api, events)
    again = post(operator_api, events)
    assert again.json() == {"accepted": 0, "duplicates": 5, "rejected": []}
    assert UsageEvent.objects.filter(organization=org).count() == 5
    assert UsageRollup.objects.get(organization=org).quantity_sum == 5


def test_repeat_inside_one_batch_is_counted_once(store_path, operator_api, org, meters):
    events = requests_events(2) + requests_events(1)
    assert post(operator_api, events).json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert UsageEvent.objects.filter(organization=org).count() == 2


def test_same_id_for_two_customers_is_two_events(operator_api, org, other_org, meters):
    events = requests_events(1, customer="acme") + requests_events(1, customer="globex")
    assert post(operator_api, events).json()["accepted"] == 2


def test_bad_events_are_named_and_the_rest_stored(store_path, operator_api, org, meters):
    now = timezone.now()
    events = [
        {"id": "ok-1", "meter": "requests", "customer": "acme"},
        {"id": "bad-meter", "meter": "nope", "customer": "acme"},
        {"id": "ok-2", "meter": "records_processed", "customer": "acme", "quantity": "12.5"},
        {"id": "bad-qty", "meter": "records_processed", "customer": "acme", "quantity": "-1"},
        {"id": "bad-customer", "meter": "requests", "customer": "nobody"},
        {
            "id": "ok-3",
            "meter": "requests",
            "customer": str(org.id),
            "timestamp": (now - timedelta(days=3)).isoformat(),
        },
    ]
    body = post(operator_api, events).json()
    assert body["accepted"] == 3
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "unknown_meter"),
        (3, "negative_quantity"),
        (4, "unknown_customer"),
    ]
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"ok-1", "ok-2", "ok-3"}


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"meter": "requests", "customer": "acme"}, "missing_id"),
        ({"id": "", "meter": "requests", "customer": "acme"}, "missing_id"),
        ({"id": 7, "meter": "requests", "customer": "acme"}, "missing_id"),
        ({"id": "x" * 256, "meter": "requests", "customer": "acme"}, "invalid_id"),
        ({"id": "a", "meter": "requests"}, "missing_customer"),
        ({"id": "a", "meter": "records_processed", "customer": "acme"}, "missing_quantity"),
        (
            {"id": "a", "meter": "records_processed", "customer": "acme", "quantity": "ten"},
            "invalid_quantity",
        ),
        (
            {"id": "a", "meter": "records_processed", "customer": "acme", "quantity": True},
            "invalid_quantity",
        ),
        (
            {"id": "a", "meter": "records_processed", "customer": "acme", "quantity": "NaN"},
            "invalid_quantity",
        ),
        (
            {"id": "a", "meter": "requests", "customer": "acme", "quantity": "1.5"},
            "invalid_quantity",
        ),
        (
            {"id": "a", "meter": "requests", "customer": "acme", "timestamp": "yesterday"},
            "invalid_timestamp",
        ),
        (
            {
                "id": "a",
                "meter": "requests",
                "customer": "acme",
                "timestamp": "2026-11-25T10:00:00",
            },
            "invalid_timestamp",
        ),
        (
            {
                "id": "a",
                "meter": "requests",
                "customer": "acme",
                "timestamp": "2020-01-01T00:00:00Z",
            },
            "timestamp_too_old",
        ),
        (
            {
                "id": "a",
                "meter": "requests",
                "customer": "acme",
                "timestamp": "2099-01-01T00:00:00Z",
            },
            "timestamp_in_future",
        ),
        (
            {"id": "a", "meter": "requests", "customer": "acme", "properties": [1]},
            "invalid_properties",
        ),
        (
            {"id": "a", "meter": "active_users", "customer": "acme", "properties": {}},
            "missing_unique_property",
        ),
        (
            {"id": "a", "meter": "requests", "customer": "acme", "environment": "prod"},
            "invalid_environment",
        ),
        (
            {"id": "a", "meter": "requests", "customer": "acme", "api_key": "tg_test_nope"},
            "invalid_api_key",
        ),
        (
            {"id": "a", "meter": "requests", "customer": "acme", "project": "not-a-uuid"},
            "unknown_project",
        ),
        ("not an object", "invalid_event"),
    ],
)
def test_each_bad_event_gets_its_own_code(operator_api, org, meters, event, code):
    body = post(operator_api, [event]).json()
    assert body["accepted"] == 0
    assert body["rejected"][0]["code"] == code
    assert UsageEvent.objects.count() == 0
    assert UsageEventId.objects.count() == 0


def test_api_key_resolves_customer_project_and_environment(store_path, operator_api, org, meters):
    key = ApiKeyFactory(project=ProjectFactory(organization=org), environment="test")
    body = post(operator_api, [{"id": "k1", "meter": "requests", "api_key": key.raw_key}]).json()
    assert body["accepted"] == 1
    row = UsageEvent.objects.get()
    assert (row.organization_id, row.project_id, row.api_key_id, row.environment) == (
        org.id,
        key.project_id,
        key.id,
        "test",
    )
    by_id = post(operator_api, [{"id": "k2", "meter": "requests", "key_id": str(key.id)}])
    assert by_id.json()["accepted"] == 1


def test_key_of_another_customer_is_refused(operator_api, org, other_org, meters):
    key = ApiKeyFactory(project=ProjectFactory(organization=other_org))
    body = post(
        operator_api, [{"id": "k", "meter": "requests", "customer": "acme", "api_key": key.raw_key}]
    ).json()
    assert body["rejected"][0]["code"] == "customer_mismatch"


def test_project_of_another_customer_is_refused(operator_api, org, other_org, meters):
    project = ProjectFactory(organization=other_org)
    body = post(
        operator_api,
        [{"id": "p", "meter": "requests", "customer": "acme", "project": str(project.id)}],
    ).json()
    assert body["rejected"][0]["code"] == "unknown_project"


def test_event_without_key_or_environment_is_live(operator_api, org, meters):
    post(operator_api, requests_events(1))
    assert UsageEvent.objects.get().environment == "live"


def test_decimal_quantities_are_stored_exactly(store_path, operator_api, org, meters):
    events = [
        {"id": f"d{i}", "meter": "records_processed", "customer": "acme", "quantity": 0.1}
        for i in range(3)
    ]
    post(operator_api, events)
    assert UsageRollup.objects.get().quantity_sum == Decimal("0.3")


def test_oversize_batch_is_413(operator_api, org, meters):
    response = post(operator_api, requests_events(1001))
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "batch_too_large"
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_request"),
        (b'{"events": {}}', "application/json", 400, "validation_error"),
        (b"[]", "application/json", 400, "validation_error"),
        (b"events=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_are_problems(operator_api, org, body, content_type, status, code):
    response = operator_api.post(URL, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_ingest_needs_an_operator_token_with_usage_write(api, db, org, meters):
    assert post(api, requests_events(1)).json()["code"] == "wrong_token_kind"
    from tests.conftest import bearer_client
    from tests.factories import ApiTokenFactory

    verify_only = bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])
    )
    assert post(verify_only, requests_events(1)).json()["code"] == "insufficient_scope"
    assert UsageEvent.objects.count() == 0


def test_timestamps_land_in_their_hour(store_path, operator_api, org, meters):
    moment = (timezone.now() - timedelta(days=2)).replace(minute=42, second=7, microsecond=0)
    post(
        operator_api,
        [{"id": "t", "meter": "requests", "customer": "acme", "timestamp": moment.isoformat()}],
    )
    rollup = UsageRollup.objects.get()
    assert rollup.hour == moment.replace(minute=0, second=0).astimezone(UTC)
    assert UsageEvent.objects.get().occurred_at == moment


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_ledger_refuses_update_and_delete_in_every_partition(operator_api, org, meters):
    from django.db import DatabaseError, transaction

    now = timezone.now()
    post(
        operator_api,
        [
            {"id": "now", "meter": "requests", "customer": "acme"},
            {
                "id": "old",
                "meter": "requests",
                "customer": "acme",
                "timestamp": (now - timedelta(days=34)).isoformat(),
            },
        ],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, count(t.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = "
            "'billing_usageevent_append_only' "
            "WHERE i.inhparent = 'billing_usageevent'::regclass GROUP BY c.relname"
        )
        partitions = dict(cursor.fetchall())
        cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM billing_usageevent")
        holding_rows = [row[0] for row in cursor.fetchall()]
    assert len(partitions) >= 6  # months around now, plus the default partition
    assert set(partitions.values()) == {1}, "every partition carries the trigger"
    for table in ["billing_usageevent", *holding_rows]:
        for statement in (f"UPDATE {table} SET quantity = 99", f"DELETE FROM {table}"):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
    assert sorted(UsageEvent.objects.values_list("quantity", flat=True)) == [1, 1]
