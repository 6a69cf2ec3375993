"""Corrections, the usage API, CSV export and tenant isolation of usage."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Meter, UsageCorrection, UsageEvent
from portal.models import AuditLogEntry
from tests.conftest import bearer_client
from tests.factories import ApiKeyFactory, ApiTokenFactory, ProjectFactory


def ingest(client, events):
    response = client.post("/api/v1/usage/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def records(count, customer="acme", meter="records_processed", quantity="10"):
    return [
        {"id": f"r{i}", "meter": meter, "customer": customer, "quantity": quantity}
        for i in range(count)
    ]


def total(client, **params):
    response = client.get("/api/v1/usage", {"meter": "records_processed", **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_correction_reverses_usage_and_keeps_the_original(operator_api, api, org, meters):
    ingest(operator_api, records(3))
    assert total(api)["results"] == [{"quantity": "30", "display_quantity": "30"}]
    response = operator_api.post(
        "/api/v1/usage/corrections",
        {"event_id": "r1", "customer": "acme", "reason": "duplicate upload"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["event_id"] == "r1" and body["reason"] == "duplicate upload"
    assert total(api)["results"][0]["quantity"] == "20"
    original = UsageEvent.objects.get(id=body["original_ledger_id"])
    reversal = UsageEvent.objects.get(id=body["reversal_ledger_id"])
    assert original.quantity == 10 and reversal.quantity == -10
    assert reversal.reverses_id == original.id and reversal.reason == "duplicate upload"
    assert AuditLogEntry.objects.filter(action="usage.corrected", organization=org).count() == 1


def test_correcting_twice_is_a_conflict(operator_api, org, meters):
    ingest(operator_api, records(1))
    payload = {"event_id": "r0", "customer": "acme", "reason": "wrong"}
    assert operator_api.post("/api/v1/usage/corrections", payload, format="json").status_code == 201
    again = operator_api.post("/api/v1/usage/corrections", payload, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "already_corrected"
    assert UsageCorrection.objects.count() == 1
    assert UsageEvent.objects.filter(reverses__isnull=False).count() == 1


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"event_id": "missing", "customer": "acme", "reason": "x"}, 404, "event_not_found"),
        ({"event_id": "r0", "customer": "nobody", "reason": "x"}, 404, "not_found"),
        ({"event_id": "r0", "customer": "acme"}, 400, "validation_error"),
        ({"event_id": "r0", "customer": "acme", "reason": "   "}, 400, "validation_error"),
    ],
)
def test_bad_corrections_are_refused(operator_api, org, meters, payload, status, code):
    ingest(operator_api, records(1))
    response = operator_api.post("/api/v1/usage/corrections", payload, format="json")
    assert response.status_code == status
    assert response.json()["code"] == code
    assert UsageEvent.objects.count() == 1


def test_usage_api_groups_and_filters(operator_api, api, org, meters):
    project = ProjectFactory(organization=org)
    key = ApiKeyFactory(project=project, environment="live")
    ingest(
        operator_api,
        [
            {
                "id": "a",
                "meter": "records_processed",
                "api_key": key.raw_key,
                "quantity": "5",
                "endpoint": "POST /bulk",
            },
            {"id": "b", "meter": "records_processed", "customer": "acme", "quantity": "7"},
        ],
    )
    body = total(api, group_by="project,endpoint")
    assert body["group_by"] == ["project", "endpoint"]
    assert {(r["project"], r["endpoint"], r["quantity"]) for r in body["results"]} == {
        (str(project.id), "POST /bulk", "5"),
        (None, "", "7"),
    }
    assert total(api, api_key=str(key.id))["results"][0]["quantity"] == "5"
    assert total(api, project=str(project.id))["results"][0]["quantity"] == "5"


def test_display_quantity_uses_the_meter_factor(operator_api, api, org, meters):
    ingest(operator_api, records(1, meter="gpu_seconds", quantity="90"))
    body = api.get("/api/v1/usage", {"meter": "gpu_seconds"}).json()
    assert body["unit"] == "GPU-second" and body["display_unit"] == "AI minutes"
    assert body["results"] == [{"quantity": "90", "display_quantity": "1.5"}]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "validation_error"),
        ({"meter": "nope"}, "unknown_meter"),
        ({"meter": "requests", "group_by": "week"}, "validation_error"),
        ({"meter": "requests", "environment": "prod"}, "validation_error"),
        (
            {"meter": "requests", "from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
            "invalid_window",
        ),
        (
            {"meter": "requests", "from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "invalid_window",
        ),
        ({"meter": "requests", "from": "soon"}, "validation_error"),
        ({"meter": "requests", "project": "x"}, "validation_error"),
    ],
)
def test_bad_usage_queries_are_problems(api, org, meters, params, code):
    response = api.get("/api/v1/usage", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_operator_reads_any_customer_and_must_name_one(operator_api, org, meters):
    ingest(operator_api, records(2))
    assert total(operator_api, customer="acme")["results"][0]["quantity"] == "20"
    response = operator_api.get("/api/v1/usage", {"meter": "records_processed"})
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_one_org_cannot_read_another_orgs_usage(
    operator_api, api, other_api, org, other_org, meters
):
    ingest(operator_api, records(2))
    assert total(other_api)["results"][0]["quantity"] == "0"
    assert (
        other_api.get(
            "/api/v1/usage", {"meter": "records_processed", "customer": "acme"}
        ).status_code
        == 404
    )
    key = ApiKeyFactory(project=ProjectFactory(organization=org))
    assert (
        other_api.get(
            "/api/v1/usage", {"meter": "records_processed", "api_key": str(key.id)}
        ).status_code
        == 404
    )
    export = other_api.get("/api/v1/usage/export.csv", {"meter": "records_processed"})
    assert len(list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))) == 1


def test_usage_read_needs_usage_scope(org, meters):
    client = bearer_client(ApiTokenFactory(organization=org, scopes=["keys:read"]))
    response = client.get("/api/v1/usage", {"meter": "requests"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_csv_export_streams_exact_ledger_rows(operator_api, api, org, meters):
    ingest(operator_api, records(3))
    operator_api.post(
        "/api/v1/usage/corrections",
        {"event_id": "r2", "customer": "acme", "reason": "test"},
        format="json",
    )
    response = api.get("/api/v1/usage/export.csv", {"meter": "records_processed"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["event_id"] for row in rows].count("r2") == 2
    assert sorted(row["quantity"] for row in rows) == ["-10", "10", "10", "10"]
    assert sum(int(row["quantity"]) for row in rows) == 20


def test_meters_api_creates_and_lists(admin_api, api, meters):
    response = admin_api.post(
        "/api/v1/meters",
        {
            "code": "tokens",
            "name": "LLM tokens",
            "unit": "token",
            "aggregation": "sum",
            "display_unit": "k tokens",
            "display_factor": "0.001",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["display_factor"] == "0.001000000000"
    codes = [meter["code"] for meter in api.get("/api/v1/meters").json()["results"]]
    assert {
        "requests",
        "records_processed",
        "storage_gb",
        "active_users",
        "gpu_seconds",
        "tokens",
    } <= set(codes)
    assert Meter.objects.get(code="tokens").aggregation == "sum"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            {"code": "requests", "name": "x", "unit": "x", "aggregation": "count"},
            "meter_code_taken",
        ),
        (
            {"code": "Bad Code", "name": "x", "unit": "x", "aggregation": "count"},
            "invalid_meter_code",
        ),
        (
            {"code": "u", "name": "x", "unit": "x", "aggregation": "unique_count"},
            "validation_error",
        ),
        ({"code": "m", "name": "x", "unit": "x", "aggregation": "median"}, "validation_error"),
        (
            {"code": "m", "name": "x", "unit": "x", "aggregation": "sum", "display_factor": "0"},
            "validation_error",
        ),
    ],
)
def test_bad_meters_are_refused(admin_api, meters, payload, code):
    before = Meter.objects.count()
    response = admin_api.post("/api/v1/meters", payload, format="json")
    assert response.status_code in (400, 409)
    assert response.json()["code"] == code
    assert Meter.objects.count() == before


def test_customers_cannot_create_meters(api, operator_api, meters):
    payload = {"code": "x", "name": "x", "unit": "x", "aggregation": "sum"}
    assert api.post("/api/v1/meters", payload, format="json").status_code == 403
    assert operator_api.post("/api/v1/meters", payload, format="json").status_code == 403


def test_window_edges_read_the_ledger_exactly(operator_api, api, org, meters):
    now = timezone.now().replace(microsecond=0)
    moment = (now - timedelta(hours=5)).replace(minute=30, second=0)
    ingest(
        operator_api,
        [
            {
                "id": f"w{i}",
                "meter": "records_processed",
                "customer": "acme",
                "quantity": "1",
                "timestamp": (moment + timedelta(minutes=i)).isoformat(),
            }
            for i in range(10)
        ],
    )
    params = {
        "from": (moment + timedelta(minutes=3)).isoformat(),
        "to": (moment + timedelta(minutes=7)).isoformat(),
    }
    assert total(api, **params)["results"][0]["quantity"] == "4"


def test_csv_export_of_a_large_range_streams_every_row(operator_api, api, org, meters):
    total_events = 12_000
    for batch in range(total_events // 1000):
        ingest(
            operator_api,
            [
                {"id": f"big-{batch}-{i}", "meter": "requests", "customer": "acme"}
                for i in range(1000)
            ],
        )
    response = api.get("/api/v1/usage/export.csv", {"meter": "requests"})
    assert response.streaming
    chunks = 0
    lines = 0
    for chunk in response.streaming_content:
        chunks += 1
        lines += chunk.count(b"\n")
    assert lines == total_events + 1  # the header, then one line per ledger row
    assert chunks == total_events + 1  # written row by row, never built in memory
