"""The status page: the outcomes API, /status and /status.json, incidents in admin."""

import json
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devdocs.health import Outcome, hour_of, record_outcomes
from devdocs.models import HealthBucket, Incident, IncidentUpdate
from devdocs.status import status_snapshot_build
from keys.models import ApiProduct
from keys.services import api_version_create
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory, UserFactory
from tests.keys.test_products import DOCUMENT

SYSTEM = Actor.system("test")
OUTCOMES = "/api/v1/gate/outcomes"
# Covered by the credential tests below; for the route guard in tests/portal/test_api.py.
STATUS_API_PATHS = {OUTCOMES}

PRIVATE_DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "Internal Ledger API", "version": "1.0"},
    "servers": [{"url": "https://internal.example.com/v1"}],
    "paths": {"/entries": {"get": {"operationId": "listEntries"}}},
}


@pytest.fixture(autouse=True)
def _no_snapshot_cache(settings):
    settings.STATUS_CACHE_SECONDS = 0


@pytest.fixture
def documents(db):
    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    return {f"{e.method} {e.path_template}": e for e in version.endpoints.all()}


@pytest.fixture
def private_version(db):
    return api_version_create(
        actor=SYSTEM,
        product_code="ledger",
        version="v1",
        document=PRIVATE_DOCUMENT,
        private=True,
    )


@pytest.fixture
def gate_api(db):
    return bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])
    )


def item(**values) -> dict:
    body = {
        "request_id": "req_0123456789",
        "product": "documents",
        "version": "v1",
        "method": "GET",
        "path": "/v1/documents/42",
        "status": 200,
        "duration_ms": 12.3,
        "at": timezone.now().isoformat(),
        "environment": "live",
    }
    body.update(values)
    return {name: value for name, value in body.items() if value is not None}


def post_outcomes(client, outcomes):
    return client.post(OUTCOMES, {"outcomes": outcomes}, format="json")


# --- POST /api/v1/gate/outcomes ------------------------------------------------------------
def test_outcomes_are_matched_like_the_gate_and_recorded(gate_api, documents):
    get = documents["GET /documents/{id}"]
    search = documents["GET /documents/search"]
    response = post_outcomes(
        gate_api,
        [
            item(),
            item(status=503, duration_ms=800),
            item(path="/documents/search", product=None, version=None),  # base path optional
            item(endpoint=str(get.id), method=None, path=None, environment="test", status=0),
        ],
    )
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 4, "rejected": 0, "errors": []}
    live = HealthBucket.objects.get(endpoint=get, environment="live")
    assert (live.calls, live.errors) == (2, 1)
    assert HealthBucket.objects.get(endpoint=search).calls == 1
    assert HealthBucket.objects.get(endpoint=get, environment="test").errors == 1


def test_bad_items_are_reported_one_by_one_and_the_good_ones_kept(gate_api, documents):
    now = timezone.now()
    bad = [
        item(status=600),
        item(status=True),
        item(status="200"),
        item(duration_ms=-1),
        item(duration_ms="12"),
        item(at="2026-11-25T10:00:00"),  # no zone
        item(at="yesterday"),
        item(at=(now + timedelta(hours=1)).isoformat()),
        item(at=(now - timedelta(days=4)).isoformat()),
        item(environment="prod"),
        item(endpoint="not-a-uuid", method=None, path=None),
        item(endpoint="0b8e7c52-4a8e-4f57-9d0c-6f1b1d0e1f3a"),
        item(path="/v1/nothing/here"),
        item(method="BREW"),
        item(path="documents/1"),
        "not an object",
    ]
    response = post_outcomes(gate_api, [item(), *bad])
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == len(bad)
    codes = [error["code"] for error in body["errors"]]
    assert [error["index"] for error in body["errors"]] == list(range(1, len(bad) + 1))
    assert codes == [
        "invalid_status",
        "invalid_status",
        "invalid_status",
        "invalid_duration",
        "invalid_duration",
        "invalid_at",
        "invalid_at",
        "at_in_future",
        "at_too_old",
        "invalid_environment",
        "invalid_endpoint",
        "endpoint_unknown",
        "endpoint_unknown",
        "invalid_method",
        "invalid_path",
        "invalid_outcome",
    ]
    assert HealthBucket.objects.get().calls == 1


def test_an_infinite_duration_is_rejected(gate_api, documents):
    # 1e400 is valid JSON that parses to infinity.
    raw = json.dumps({"outcomes": [item(duration_ms=1)]}).replace(
        '"duration_ms": 1', '"duration_ms": 1e400'
    )
    response = gate_api.post(OUTCOMES, raw, content_type="application/json")
    assert response.status_code == 202
    assert response.json()["errors"][0]["code"] == "invalid_duration"
    assert not HealthBucket.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "malformed_request"),
        ("[]", 400, "validation_error"),
        ('{"outcomes": {"status": 200}}', 400, "validation_error"),
        ('{"events": []}', 400, "validation_error"),
    ],
)
def test_a_malformed_body_is_a_problem_and_stores_nothing(gate_api, documents, body, status, code):
    response = gate_api.post(OUTCOMES, body, content_type="application/json")
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not HealthBucket.objects.exists()


def test_a_batch_over_the_limit_is_refused_whole(gate_api, documents):
    response = post_outcomes(gate_api, [item()] * 1001)
    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert not HealthBucket.objects.exists()


def test_outcomes_need_an_operator_token_with_gate_verify(db, anonymous_api, api, documents):
    response = post_outcomes(anonymous_api, [item()])
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    response = post_outcomes(api, [item()])  # an org token
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_token_kind"
    usage_only = bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["usage:write"])
    )
    response = post_outcomes(usage_only, [item()])
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert not HealthBucket.objects.exists()


def test_a_repeated_batch_with_its_idempotency_key_counts_once(gate_api, documents):
    batch = {"outcomes": [item()]}
    for _ in range(2):
        response = gate_api.post(OUTCOMES, batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
        assert response.status_code == 202
    assert HealthBucket.objects.get().calls == 1


# --- /status and /status.json ---------------------------------------------------------------
def record(endpoint, *, count=1, status=200, environment="live", at=None, ms=20.0):
    record_outcomes(
        [
            Outcome(
                endpoint_id=str(endpoint.id),
                environment=environment,
                status=status,
                duration_ms=ms,
                at=at or timezone.now(),
            )
        ]
        * count
    )


def test_the_status_page_is_public_and_says_no_data_without_calls(client, documents):
    response = client.get("/status")
    assert response.status_code == 200
    page = response.content.decode()
    assert "All systems operational" in page
    assert "Documents API" in page
    assert "No data" in page
    assert "100.00%" not in page
    assert page.count('class="status-day status-day-none"') == 90 * 2  # product + sandbox
    assert "css/status.css" in page


def test_the_page_shows_measured_uptime_latency_and_day_bars(client, documents):
    get = documents["GET /documents/{id}"]
    record(get, count=99, ms=20)
    record(get, count=1, status=500, ms=20)
    record(documents["POST /documents/bulk"], count=3, environment="test")
    page = client.get("/status").content.decode()
    assert "99.00%" in page
    assert "status-day-minor" in page  # today: 99% uptime
    assert "Bulk" in page and "Read" in page and "Write" in page  # parts by group
    assert "18 ms / 24 ms" in page  # p50 17.5 / p95 24.25, inside the 10-25 ms bucket


def test_the_feed_has_the_same_content_and_may_be_cached(client, documents):
    get = documents["GET /documents/{id}"]
    record(get, count=4)
    record(get, count=1, status=503)
    record(get, count=2, environment="test")
    response = client.get("/status.json")
    assert response.status_code == 200
    assert "public" in response["Cache-Control"] and "max-age=30" in response["Cache-Control"]
    feed = response.json()
    assert feed["status"] == {"indicator": "operational", "description": "All systems operational"}
    assert feed["generated_at"].endswith("Z")
    [product, sandbox] = feed["components"]
    assert (product["code"], product["kind"], product["version"]) == ("documents", "product", "v1")
    assert product["windows"]["24h"]["calls"] == 5
    assert product["windows"]["24h"]["uptime_percent"] == 80.0
    assert product["windows"]["90d"]["p50_ms"] is not None
    assert len(product["days"]) == 90
    assert product["days"][-1]["uptime_percent"] == 80.0
    assert product["days"][0]["uptime_percent"] is None
    read = next(part for part in product["parts"] if part["code"] == "read")
    assert "GET /documents/{id}" in read["endpoints"]
    write = next(part for part in product["parts"] if part["code"] == "write")
    assert write["windows"]["7d"] == {
        "calls": 0,
        "errors": 0,
        "uptime_percent": None,
        "p50_ms": None,
        "p95_ms": None,
    }
    assert sandbox["environment"] == "test"
    assert sandbox["windows"]["24h"]["calls"] == 2
    assert feed["incidents"] == [] and feed["history"] == []


def test_private_products_and_their_incidents_stay_hidden(client, documents, private_version):
    [entries] = private_version.endpoints.all()
    record(entries, count=5)
    hidden = Incident.objects.create(title="Ledger replica lag", impact="critical")
    hidden.products.add(private_version.product)
    also_hidden = Incident.objects.create(title="Entries endpoint down", impact="major")
    also_hidden.endpoints.add(entries)
    mixed = Incident.objects.create(title="Slow reads everywhere", impact="minor")
    mixed.products.add(private_version.product, ApiProduct.objects.get(code="documents"))
    page = client.get("/status").content.decode()
    feed = client.get("/status.json").json()
    for text in ("Internal Ledger API", "Ledger replica lag", "Entries endpoint down", "ledger"):
        assert text not in page
        assert text not in json.dumps(feed)
    assert [incident["title"] for incident in feed["incidents"]] == ["Slow reads everywhere"]
    assert feed["incidents"][0]["affected"] == ["Documents API"]
    assert feed["status"]["indicator"] == "degraded"  # the critical one is not ours to show
    assert client.get(f"/status/incidents/{hidden.id}").status_code == 404
    assert client.get(f"/status/incidents/{mixed.id}").status_code == 200


@pytest.mark.parametrize(
    ("impacts", "indicator"),
    [
        ([], "operational"),
        (["none"], "operational"),
        (["minor"], "degraded"),
        (["minor", "major"], "partial_outage"),
        (["critical", "minor"], "major_outage"),
    ],
)
def test_the_overall_state_follows_the_worst_open_incident(documents, impacts, indicator):
    for impact in impacts:
        Incident.objects.create(title=f"{impact} trouble", impact=impact)
    # A resolved critical incident no longer counts.
    Incident.objects.create(
        title="Old outage", impact="critical", status="resolved", resolved_at=timezone.now()
    )
    snapshot = status_snapshot_build()
    assert snapshot.indicator == indicator
    assert {component.indicator for component in snapshot.components} == {indicator}


@pytest.mark.parametrize(
    ("errors", "indicator"),
    [(0, "operational"), (1, "degraded"), (3, "partial_outage"), (10, "major_outage")],
)
def test_the_last_hours_error_rate_sets_the_state_too(documents, errors, indicator):
    get = documents["GET /documents/{id}"]
    record(get, count=40 - errors)
    if errors:
        record(get, count=errors, status=502)
    # Errors of three hours ago do not make the last hour's state worse.
    record(get, count=40, status=500, at=hour_of(timezone.now()) - timedelta(hours=3))
    snapshot = status_snapshot_build()
    assert snapshot.components[0].indicator == indicator
    assert snapshot.indicator == indicator


def test_the_sandbox_is_a_component_of_its_own(documents):
    get = documents["GET /documents/{id}"]
    record(get, count=40)
    record(get, count=40, status=500, environment="test")
    product, sandbox = status_snapshot_build().components
    assert product.indicator == "operational"
    assert (sandbox.code, sandbox.environment, sandbox.indicator) == (
        "sandbox",
        "test",
        "major_outage",
    )
    assert sandbox.windows["24h"].uptime == 0


def test_a_few_calls_do_not_make_an_outage(documents):
    record(documents["GET /documents/{id}"], count=2, status=500)
    assert status_snapshot_build().indicator == "operational"


def test_an_incident_page_shows_its_updates(client, documents):
    incident = Incident.objects.create(title="Search is slow", impact="minor")
    incident.products.add(ApiProduct.objects.get(code="documents"))
    IncidentUpdate.objects.create(
        incident=incident,
        status="investigating",
        body="We are looking into slow searches.",
        posted_at=timezone.now() - timedelta(minutes=5),
    )
    IncidentUpdate.objects.create(
        incident=incident, status="identified", body="An index was missing."
    )
    page = client.get(f"/status/incidents/{incident.id}").content.decode()
    assert "Search is slow" in page
    assert page.index("An index was missing.") < page.index("We are looking into slow searches.")
    feed = client.get("/status.json").json()
    [shown] = feed["incidents"]
    assert [update["status"] for update in shown["updates"]] == ["identified", "investigating"]
    assert shown["url"].endswith(f"/status/incidents/{incident.id}")
    assert client.get("/status/incidents/0b8e7c52-4a8e-4f57-9d0c-6f1b1d0e1f3a").status_code == 404
    assert client.get("/status/incidents/nope").status_code == 404


def test_history_keeps_resolved_incidents_of_the_last_ninety_days(client, documents):
    now = timezone.now()
    Incident.objects.create(
        title="Last month",
        status="resolved",
        started_at=now - timedelta(days=30),
        resolved_at=now - timedelta(days=30),
    )
    Incident.objects.create(
        title="Long ago",
        status="resolved",
        started_at=now - timedelta(days=120),
        resolved_at=now - timedelta(days=119),
    )
    feed = client.get("/status.json").json()
    assert [incident["title"] for incident in feed["history"]] == ["Last month"]
    assert "Last month" in client.get("/status").content.decode()


def test_the_snapshot_is_cached_and_an_incident_saved_in_admin_clears_it(
    client, documents, settings
):
    settings.STATUS_CACHE_SECONDS = 30
    from devdocs.status import incident_sync_status, status_cache_clear, status_snapshot

    status_cache_clear()
    assert status_snapshot().active_incidents == []
    incident = Incident.objects.create(title="Unseen for now", impact="minor")
    assert status_snapshot().active_incidents == []  # cached
    incident_sync_status(actor=SYSTEM, incident=incident)
    assert [i.title for i in status_snapshot().active_incidents] == ["Unseen for now"]
    status_cache_clear()


# --- Incidents in admin ---------------------------------------------------------------------
@pytest.fixture
def operator_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def incident_form(*, updates, initial=0, **fields):
    now = timezone.now()
    data = {
        "title": "Writes failing",
        "status": "investigating",
        "impact": "major",
        "started_at_0": now.strftime("%Y-%m-%d"),
        "started_at_1": now.strftime("%H:%M:%S"),
        "updates-TOTAL_FORMS": str(len(updates)),
        "updates-INITIAL_FORMS": str(initial),
        "updates-MIN_NUM_FORMS": "0",
        "updates-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    for index, update in enumerate(updates):
        posted = update.pop("posted_at", now)
        for name, value in update.items():
            data[f"updates-{index}-{name}"] = value
        data[f"updates-{index}-posted_at_0"] = posted.strftime("%Y-%m-%d")
        data[f"updates-{index}-posted_at_1"] = posted.strftime("%H:%M:%S")
    return data


def test_an_incident_follows_its_newest_update_through_admin(operator_client, documents):
    product = ApiProduct.objects.get(code="documents")
    now = timezone.now().replace(microsecond=0)
    response = operator_client.post(
        reverse("admin:devdocs_incident_add"),
        incident_form(
            products=[str(product.id)],
            updates=[{"status": "identified", "body": "A bad deploy.", "posted_at": now}],
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    incident = Incident.objects.get()
    assert incident.status == "identified"  # the update's status, not the form's
    assert incident.resolved_at is None
    assert list(incident.products.all()) == [product]
    assert client_feed_titles(operator_client) == ["Writes failing"]

    first = incident.updates.get()
    resolved_at = now + timedelta(minutes=30)
    change = reverse("admin:devdocs_incident_change", args=[incident.id])
    response = operator_client.post(
        change,
        incident_form(
            initial=1,
            products=[str(product.id)],
            status="identified",
            updates=[
                {
                    "id": str(first.id),
                    "incident": str(incident.id),
                    "status": "identified",
                    "body": "A bad deploy.",
                    "posted_at": now,
                },
                {
                    "status": "resolved",
                    "body": "Rolled back; writes work again.",
                    "posted_at": resolved_at,
                },
            ],
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert incident.resolved_at == resolved_at
    assert client_feed_titles(operator_client) == []
    assert operator_client.get("/status.json").json()["history"][0]["title"] == "Writes failing"

    # Reopened: a newer "investigating" update clears resolved_at.
    second = incident.updates.get(status="resolved")
    response = operator_client.post(
        change,
        incident_form(
            initial=2,
            products=[str(product.id)],
            status="resolved",
            updates=[
                {
                    "id": str(first.id),
                    "incident": str(incident.id),
                    "status": "identified",
                    "body": "A bad deploy.",
                    "posted_at": now,
                },
                {
                    "id": str(second.id),
                    "incident": str(incident.id),
                    "status": "resolved",
                    "body": "Rolled back; writes work again.",
                    "posted_at": resolved_at,
                },
                {
                    "status": "investigating",
                    "body": "Errors are back.",
                    "posted_at": resolved_at + timedelta(minutes=10),
                },
            ],
        ),
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at) == ("investigating", None)
    actions = set(AuditLogEntry.objects.values_list("action", flat=True))
    assert {
        "incident.created_in_admin",
        "incidentupdate.created_in_admin",
        "incident.status_changed",
    } <= actions


def test_an_incident_without_updates_resolved_in_admin_gets_resolved_at(operator_client, documents):
    response = operator_client.post(
        reverse("admin:devdocs_incident_add"),
        incident_form(updates=[], status="resolved", impact="none"),
    )
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.status == "resolved" and incident.resolved_at is not None


def test_a_bad_incident_form_is_answered_with_errors_not_a_crash(operator_client, documents):
    response = operator_client.post(
        reverse("admin:devdocs_incident_add"),
        incident_form(updates=[{"status": "exploded", "body": ""}], impact="apocalyptic"),
    )
    assert response.status_code == 200
    assert not Incident.objects.exists()
    assert "errornote" in response.content.decode()


def test_measurements_are_read_only_in_admin(operator_client, documents):
    record(documents["GET /documents/{id}"])
    response = operator_client.get(reverse("admin:devdocs_healthbucket_changelist"))
    assert response.status_code == 200
    assert operator_client.get(reverse("admin:devdocs_healthbucket_add")).status_code == 403


def client_feed_titles(client):
    return [incident["title"] for incident in client.get("/status.json").json()["incidents"]]


def test_without_public_apis_the_page_says_so(client, private_version):
    page = client.get("/status").content.decode()
    assert "No public APIs yet." in page
    assert "Internal Ledger API" not in page
    feed = client.get("/status.json").json()
    assert feed["components"] == []
    assert feed["status"]["indicator"] == "operational"


def test_the_incident_form_names_endpoints_with_their_product(operator_client, documents):
    page = operator_client.get(reverse("admin:devdocs_incident_add")).content.decode()
    assert "documents v1: GET /documents/{id}" in page
    assert 'name="updates-TOTAL_FORMS"' in page


# --- Review fixes ------------------------------------------------------------------------------
def test_the_sandbox_never_sets_the_pages_overall_state(documents):
    """The overall state is about the live API; the Sandbox component is shown on its own."""
    get = documents["GET /documents/{id}"]
    record(get, count=40, status=500, environment="test")
    snapshot = status_snapshot_build()
    product, sandbox = snapshot.components
    assert sandbox.indicator == "major_outage"
    assert product.indicator == "operational"
    assert snapshot.indicator == "operational"


def test_a_platform_wide_incident_still_sets_the_overall_state_without_the_sandbox(documents):
    Incident.objects.create(title="Everything is slow", impact="minor")
    snapshot = status_snapshot_build()
    assert snapshot.indicator == "degraded"
    assert {component.indicator for component in snapshot.components} == {"degraded"}


@pytest.fixture
def two_live_versions(documents):
    """documents v1 (older, still live), v2 (newest) and v0 (past its sunset)."""
    from keys.models import ApiVersion

    v2 = api_version_create(actor=SYSTEM, product_code="documents", version="v2", document=DOCUMENT)
    v0 = api_version_create(actor=SYSTEM, product_code="documents", version="v0", document=DOCUMENT)
    ApiVersion.objects.filter(pk=v0.pk).update(
        created_at=timezone.now() - timedelta(days=400),
        sunset_at=timezone.now() - timedelta(days=1),
    )
    ApiVersion.objects.filter(pk=v2.pk).update(created_at=timezone.now() + timedelta(seconds=1))
    return {
        "v1": documents,
        "v2": {f"{e.method} {e.path_template}": e for e in v2.endpoints.all()},
        "v0": {f"{e.method} {e.path_template}": e for e in v0.endpoints.all()},
    }


def test_an_outage_of_an_older_live_version_shows(client, two_live_versions):
    record(two_live_versions["v1"]["GET /documents/{id}"], count=30, status=503)
    record(two_live_versions["v2"]["GET /documents/{id}"], count=10)
    record(two_live_versions["v0"]["GET /documents/{id}"], count=50, status=503)  # sunset
    snapshot = status_snapshot_build()
    [product, _sandbox] = snapshot.components
    assert (product.version, product.versions) == ("v2", ["v2", "v1"])
    assert product.windows["24h"].calls == 40
    assert product.windows["24h"].errors == 30
    assert product.indicator == snapshot.indicator == "major_outage"
    read = next(part for part in product.parts if part.code == "read")
    assert read.windows["24h"].calls == 40
    assert read.endpoints.count("GET /documents/{id}") == 1  # one line for both versions
    feed = client.get("/status.json").json()
    assert feed["components"][0]["versions"] == ["v2", "v1"]
    assert feed["components"][0]["days"][-1]["calls"] == 40
    assert "v2, v1" in client.get("/status").content.decode()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('"at": "2026-13-45T00:00:00Z"', "invalid_at"),  # parse_datetime raises ValueError
        ('"at": "2026-11-25T10:00:00+99:00"', "invalid_at"),
        ('"duration_ms": ' + "9" * 400, "invalid_duration"),  # too big for a float
        ('"duration_ms": -' + "9" * 400, "invalid_duration"),
        ('"duration_ms": true', "invalid_duration"),
        ('"status": ' + "2" * 400, "invalid_status"),
        ('"status": 200.0', "invalid_status"),
        ('"status": false', "invalid_status"),
        ('"endpoint": ' + "1" * 400, "invalid_endpoint"),
        ('"request_id": 12', "invalid_request_id"),
    ],
)
def test_out_of_range_values_reject_their_item_never_a_500(gate_api, documents, raw, code):
    name = raw.split(":")[0].strip('"')
    good = json.dumps(item())
    values = item()
    values.pop(name, None)
    bad = json.dumps(values)[:-1] + ", " + raw + "}"
    body = '{"outcomes": [' + good + ", " + bad + "]}"
    response = gate_api.post(OUTCOMES, body, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 1
    assert [error["code"] for error in response.json()["errors"]] == [code]
    assert HealthBucket.objects.get().calls == 1


def test_a_number_too_long_to_parse_refuses_the_batch_not_a_500(gate_api, documents):
    body = '{"outcomes": [{"status": ' + "9" * 5000 + "}]}"
    response = gate_api.post(OUTCOMES, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_the_snapshot_costs_a_bounded_number_of_queries_whatever_the_buckets(
    documents, django_assert_max_num_queries
):
    """Sums are made in SQL: the query count does not grow with hours or endpoints."""
    from devdocs.health import BUCKETS

    now = timezone.now()
    HealthBucket.objects.bulk_create(
        HealthBucket(
            endpoint=endpoint,
            environment=environment,
            hour=hour_of(now) - timedelta(hours=hours),
            calls=10,
            errors=1,
            latency_ms_total=200.0,
            histogram=[1] * 10 + [0] * (BUCKETS - 10),
        )
        for endpoint in documents.values()
        for environment in ("live", "test")
        for hours in range(0, 24 * 90, 7)
    )
    with django_assert_max_num_queries(12):
        snapshot = status_snapshot_build()
    product, sandbox = snapshot.components
    hours_90d = len(range(0, 24 * 90, 7))
    assert product.windows["90d"].calls == 10 * hours_90d * len(documents)
    assert product.windows["24h"].calls == 10 * len(range(0, 24, 7)) * len(documents)
    assert product.windows["24h"].p50_ms == pytest.approx(100.0)  # the 5th of 10 buckets' top
    first_day = hour_of(now).replace(hour=0) - timedelta(days=89)
    in_strip = [h for h in range(0, 24 * 90, 7) if hour_of(now) - timedelta(hours=h) >= first_day]
    assert sum(day.calls for day in product.days) == 10 * len(in_strip) * len(documents)
    assert sandbox.windows["7d"].calls == 10 * len(range(0, 24 * 7, 7)) * len(documents)


def test_a_stale_snapshot_is_served_while_another_process_rebuilds(documents, settings):
    """No stampede: one process rebuilds (it holds the cache lock); the rest serve the last
    snapshot meanwhile, without touching the database."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from devdocs import status

    settings.STATUS_CACHE_SECONDS = 30
    status.status_cache_clear()
    first = status.status_snapshot()
    Incident.objects.create(title="Built by the other process", impact="minor")
    later = time.time() + 60  # the cached snapshot is stale by then
    assert cache.add(status.REBUILD_LOCK_KEY, "another process", 60)
    try:
        with CaptureQueriesContext(connection) as queries:
            served = status.status_snapshot(clock=later)
        assert served.generated_at == first.generated_at
        assert len(queries) == 0
    finally:
        cache.delete(status.REBUILD_LOCK_KEY)
    rebuilt = status.status_snapshot(clock=later)
    assert [incident.title for incident in rebuilt.active_incidents] == [
        "Built by the other process"
    ]
    assert cache.get(status.REBUILD_LOCK_KEY) is None  # released after the rebuild
    status.status_cache_clear()


def test_with_nothing_cached_a_reader_waits_then_builds_itself(documents, settings, monkeypatch):
    """A rebuilder that never delivers (died, or slow) costs a reader WAIT_SECONDS at most,
    and the lock it holds is left to it."""
    from django.core.cache import cache

    from devdocs import status

    settings.STATUS_CACHE_SECONDS = 30
    monkeypatch.setattr(status, "WAIT_SECONDS", 0.2)  # a setting of the wait, not a mock
    status.status_cache_clear()
    assert cache.add(status.REBUILD_LOCK_KEY, "a stuck process", 60)
    try:
        snapshot = status.status_snapshot()
        assert [component.code for component in snapshot.components] == ["documents", "sandbox"]
        assert cache.get(status.REBUILD_LOCK_KEY) == "a stuck process"
    finally:
        cache.delete(status.REBUILD_LOCK_KEY)
        status.status_cache_clear()
