"""Alerts: usage and spend thresholds fire once per period (even when workers race), the
gate's soft-quota crossings become alerts, bad input is refused, and tenants stay apart."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

import billing.alerts
from billing.alerts import (
    QUOTA_CROSSINGS_GROUP,
    QUOTA_CROSSINGS_STREAM,
    alert_threshold_create,
    alert_threshold_delete,
    alerts_check,
    quota_crossings_consume,
)
from billing.demo_catalog import ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.models import AlertFiring, AlertThreshold, Meter, Plan, UsageAnomaly
from billing.subscriptions import subscription_subscribe
from billing.tasks import check_alerts, consume_quota_crossings
from common.errors import InvalidInput, PermissionDenied
from common.problems import PROBLEM_CONTENT_TYPE
from common.redis import get_redis
from keys.gate_usage import CROSSINGS_KEY, record_crossing
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory, MembershipFactory, OrganizationFactory

SYSTEM = Actor.system("test")
D = Decimal
THRESHOLDS = "/api/v1/alert-thresholds"
ALERTS = "/api/v1/alerts"


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def catalog(meters):
    ensure_demo_catalog(actor=SYSTEM)


@pytest.fixture(autouse=True)
def old_usage_allowed(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650


@pytest.fixture(autouse=True)
def empty_crossings():
    client = get_redis()
    client.delete(QUOTA_CROSSINGS_STREAM)
    yield
    client.delete(QUOTA_CROSSINGS_STREAM)


def subscribe(org, code="pro", now=None):
    Plan.objects.filter(code=code).update(trial_days=0)
    return subscription_subscribe(
        actor=SYSTEM, organization=org, plan=Plan.objects.get(code=code), now=now or at(2026, 1, 1)
    )


def record(org, meter: str, quantity, when: datetime, environment="live") -> None:
    result = usage_ingest(
        events=[
            {
                "id": f"{meter}-{when.isoformat()}-{quantity}-{environment}",
                "meter": meter,
                "customer": org.slug,
                "quantity": quantity,
                "timestamp": when.isoformat(),
                "environment": environment,
            }
        ]
    )
    assert result.accepted == 1, result.rejected


def threshold(org, kind="usage", value="1000", meter="requests", **extra) -> AlertThreshold:
    return alert_threshold_create(
        actor=SYSTEM,
        organization=org,
        kind=kind,
        value=value,
        meter_code=meter if kind == "usage" else None,
        **extra,
    )


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


# --- Thresholds fire once per period ------------------------------------------------------
def test_a_usage_threshold_fires_once_per_period(
    org, owner, catalog, mailoutbox, django_capture_on_commit_callbacks
):
    subscribe(org)
    limit = threshold(org, value="1000")
    record(org, "requests", 600, at(2026, 1, 5))
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_check(organization=org, now=at(2026, 1, 6)).fired == []
    record(org, "requests", 600, at(2026, 1, 7))
    with django_capture_on_commit_callbacks(execute=True):
        [firing] = alerts_check(organization=org, now=at(2026, 1, 8)).fired
        assert alerts_check(organization=org, now=at(2026, 1, 9)).fired == []
    assert (firing.key, firing.source, firing.meter) == (
        f"threshold:{limit.id}",
        "threshold",
        "requests",
    )
    assert (firing.value, firing.limit, firing.period_start) == (D(1200), D(1000), at(2026, 1, 1))
    assert AlertFiring.objects.filter(organization=org).count() == 1
    [message] = mailoutbox
    assert message.to == [owner.email]
    assert "API requests reached 1,000" in message.subject
    assert "1,200 requests" in message.body and "1,000 requests" in message.body
    assert "/o/acme/billing/alerts" in message.body


def test_a_threshold_fires_again_in_the_next_period(org, owner, catalog, mailoutbox):
    subscribe(org)
    threshold(org, value="100")
    record(org, "requests", 150, at(2026, 1, 5))
    record(org, "requests", 150, at(2026, 2, 5))
    assert len(alerts_check(organization=org, now=at(2026, 1, 20)).fired) == 1
    [february] = alerts_check(organization=org, now=at(2026, 2, 10)).fired
    assert february.period_start == at(2026, 2, 1)
    assert february.value == D(150)  # only February's usage counts in February
    assert AlertFiring.objects.filter(organization=org).count() == 2


def test_test_environment_usage_does_not_count(org, catalog):
    subscribe(org)
    threshold(org, value="100")
    record(org, "requests", 500, at(2026, 1, 5), environment="test")
    assert alerts_check(organization=org, now=at(2026, 1, 6)).fired == []


def test_a_spend_threshold_fires_on_the_bill_so_far(
    org, owner, catalog, mailoutbox, django_capture_on_commit_callbacks
):
    subscribe(org)  # Pro: 49.00 base fee, 10,000 free requests, then 0.0004 each
    low = threshold(org, kind="spend", value="50")
    threshold(org, kind="spend", value="100")
    record(org, "requests", 20_000, at(2026, 1, 5))  # 10,000 billable: 4.00
    with django_capture_on_commit_callbacks(execute=True):
        [firing] = alerts_check(organization=org, now=at(2026, 1, 6)).fired
    assert (firing.threshold, firing.value, firing.meter) == (low, D("53.00"), "")
    [message] = mailoutbox
    assert "$50.00" in message.subject
    assert "$53.00" in message.body


def test_without_a_subscription_spend_never_fires_but_usage_does(org, catalog, meters):
    threshold(org, kind="spend", value="1")
    threshold(org, value="10")
    record(org, "requests", 20, at(2026, 3, 5))
    [firing] = alerts_check(organization=org, now=at(2026, 3, 6)).fired
    assert (firing.meter, firing.period_start) == ("requests", at(2026, 3, 1))  # calendar month


def test_a_firing_recorded_already_is_not_recorded_or_sent_again(
    org, owner, catalog, mailoutbox, django_capture_on_commit_callbacks
):
    """The path a worker that loses the race takes: its insert fails in a savepoint, it
    sends nothing, and the surrounding transaction goes on."""
    subscribe(org)
    limit = threshold(org, value="10")
    record(org, "requests", 20, at(2026, 1, 5))
    AlertFiring.objects.create(
        organization=org,
        threshold=limit,
        key=f"threshold:{limit.id}",
        meter="requests",
        period_start=at(2026, 1, 1),
        value=D(20),
        limit=D(10),
    )
    with django_capture_on_commit_callbacks(execute=True):
        second = billing.alerts._record_firing(
            organization=org,
            key=f"threshold:{limit.id}",
            source="threshold",
            period_start=at(2026, 1, 1),
            meter="requests",
            value=D(20),
            limit=D(10),
            threshold=limit,
            now=at(2026, 1, 6),
            email=("subject", "billing/email/alert_threshold.txt", {"threshold": limit}),
        )
    assert second is None
    assert mailoutbox == []
    assert AlertFiring.objects.count() == 1  # the connection is still usable


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_record_one_firing_and_send_one_email(meters, mailoutbox, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent connections")
    org = OrganizationFactory()
    MembershipFactory(organization=org)
    threshold(org, value="10")
    record(org, "requests", 20, at(2026, 3, 5))
    # Both workers measure usage only after both have seen that nothing fired yet, so both
    # try to insert the firing: the unique constraint lets one through.
    barrier = threading.Barrier(2, timeout=10)
    measure = billing.alerts._usage

    def usage_after_both_looked(*args):
        barrier.wait()
        return measure(*args)

    monkeypatch.setattr(billing.alerts, "_usage", usage_after_both_looked)
    results, errors = [], []

    def worker():
        try:
            results.append(len(alerts_check(organization=org, now=at(2026, 3, 6)).fired))
        except Exception as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [0, 1]
    assert AlertFiring.objects.filter(organization=org).count() == 1
    assert len(mailoutbox) == 1


def test_the_check_alerts_task_checks_every_org_with_thresholds(org, other_org, catalog):
    threshold(org, value="1")
    threshold(other_org, value="1")
    now = timezone.now()
    record(org, "requests", 5, now)
    record(other_org, "requests", 5, now)
    assert check_alerts.delay().get() == 2
    assert check_alerts.delay().get() == 0


# --- Soft-quota crossings from the gate ---------------------------------------------------
def test_billing_reads_the_stream_the_gate_writes():
    assert QUOTA_CROSSINGS_STREAM == CROSSINGS_KEY


def test_a_soft_quota_crossing_becomes_one_alert(
    org, owner, catalog, mailoutbox, django_capture_on_commit_callbacks
):
    client = get_redis()
    period_start = at(2026, 1, 1)
    record(org, "requests", 5_000_100, at(2026, 1, 20))
    record_crossing(
        client,
        organization_id=str(org.id),
        meter="requests",
        period_start=period_start,
        limit=5_000_000,
    )
    # The same crossing reported twice (e.g. the gate's flag lost with a Redis restart).
    client.xadd(
        CROSSINGS_KEY,
        {
            "organization": str(org.id),
            "meter": "requests",
            "period_start": period_start.isoformat(),
            "limit": "5000000",
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert quota_crossings_consume(client) == 2
    [firing] = AlertFiring.objects.filter(organization=org)
    assert (firing.key, firing.source, firing.threshold) == (
        "soft_quota:requests",
        "soft_quota",
        None,
    )
    assert (firing.limit, firing.value, firing.period_start) == (
        D(5_000_000),
        D(5_000_100),
        period_start,
    )
    [message] = mailoutbox
    assert message.to == [owner.email]
    assert "5,000,000" in message.subject
    # Handled entries are acknowledged and removed.
    assert client.xlen(QUOTA_CROSSINGS_STREAM) == 0
    assert client.xpending(QUOTA_CROSSINGS_STREAM, QUOTA_CROSSINGS_GROUP)["pending"] == 0
    assert quota_crossings_consume(client) == 0


def test_malformed_crossings_are_dropped(org, catalog):
    client = get_redis()
    client.xadd(CROSSINGS_KEY, {"organization": str(org.id), "meter": "requests", "limit": "x"})
    client.xadd(
        CROSSINGS_KEY,
        {
            "organization": "not-an-id",
            "meter": "requests",
            "period_start": at(2026, 1, 1).isoformat(),
            "limit": "10",
        },
    )
    assert consume_quota_crossings.delay().get() == 2
    assert AlertFiring.objects.count() == 0
    assert client.xlen(QUOTA_CROSSINGS_STREAM) == 0


def test_a_crossing_that_fails_stays_pending_without_blocking_those_behind_it(org, catalog):
    client = get_redis()
    period_start = at(2026, 1, 1)
    record(org, "requests", 5_000_100, at(2026, 1, 20))
    # The database refuses this one (a NUL character), whatever the number of tries.
    client.xadd(
        CROSSINGS_KEY,
        {
            "organization": str(org.id),
            "meter": "requ\x00ests",
            "period_start": period_start.isoformat(),
            "limit": "10",
        },
    )
    record_crossing(
        client,
        organization_id=str(org.id),
        meter="requests",
        period_start=period_start,
        limit=5_000_000,
    )
    assert quota_crossings_consume(client) == 1
    assert AlertFiring.objects.filter(organization=org).count() == 1
    assert client.xpending(QUOTA_CROSSINGS_STREAM, QUOTA_CROSSINGS_GROUP)["pending"] == 1


def test_a_crossing_a_dead_worker_read_is_claimed_by_another(org, catalog, monkeypatch):
    client = get_redis()
    record_crossing(
        client,
        organization_id=str(org.id),
        meter="requests",
        period_start=at(2026, 4, 1),
        limit=100,
    )
    billing.alerts._ensure_group(client)
    client.xreadgroup(QUOTA_CROSSINGS_GROUP, "dead-worker", {QUOTA_CROSSINGS_STREAM: ">"})
    assert quota_crossings_consume(client, consumer="alive") == 0  # not idle long enough yet
    monkeypatch.setattr(billing.alerts, "CLAIM_IDLE_MS", 0)
    assert quota_crossings_consume(client, consumer="alive") == 1
    assert AlertFiring.objects.filter(organization=org, key="soft_quota:requests").count() == 1


# --- Thresholds: bad input and permissions --------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "meter", "value", "code"),
    [
        ("volume", "requests", "10", "invalid_kind"),
        (None, "requests", "10", "invalid_kind"),
        ("usage", "nope", "10", "unknown_meter"),
        ("usage", None, "10", "unknown_meter"),
        ("usage", 7, "10", "unknown_meter"),
        ("spend", "requests", "10", "validation_error"),
        ("usage", "requests", "0", "invalid_value"),
        ("usage", "requests", "-5", "invalid_value"),
        ("usage", "requests", "abc", "invalid_value"),
        ("usage", "requests", "NaN", "invalid_value"),
        ("usage", "requests", "Infinity", "invalid_value"),
        ("usage", "requests", True, "invalid_value"),
        ("usage", "requests", None, "invalid_value"),
        ("usage", "requests", [], "invalid_value"),
        ("usage", "requests", "0.0000000000001", "invalid_value"),
        ("usage", "requests", "1e40", "invalid_value"),
    ],
)
def test_bad_thresholds_are_refused(org, meters, kind, meter, value, code):
    with pytest.raises(InvalidInput) as error:
        alert_threshold_create(
            actor=SYSTEM, organization=org, kind=kind, value=value, meter_code=meter
        )
    assert error.value.code == code
    assert AlertThreshold.objects.count() == 0


def test_customers_cannot_delete_the_operators_thresholds(org, meters):
    operator_threshold = threshold(org, by_operator=True)
    with pytest.raises(PermissionDenied) as error:
        alert_threshold_delete(actor=SYSTEM, threshold=operator_threshold)
    assert error.value.code == "operator_threshold"
    alert_threshold_delete(actor=SYSTEM, threshold=operator_threshold, by_operator=True)
    assert not AlertThreshold.objects.exists()


# --- API -----------------------------------------------------------------------------------
def test_an_org_token_manages_its_thresholds(api, org, meters):
    response = api.post(
        THRESHOLDS, {"kind": "usage", "meter": "requests", "value": "2500000"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "kind": "usage",
        "meter": "requests",
        "value": "2500000",
        "set_by_operator": False,
        "created_at": body["created_at"],
    }
    spend = api.post(THRESHOLDS, {"kind": "spend", "value": 100.5}, format="json").json()
    assert (spend["meter"], spend["value"]) == (None, "100.5")
    listed = api.get(THRESHOLDS).json()
    assert {row["id"] for row in listed["results"]} == {body["id"], spend["id"]}
    assert api.delete(f"{THRESHOLDS}/{body['id']}").status_code == 204
    assert [row["id"] for row in api.get(THRESHOLDS).json()["results"]] == [spend["id"]]
    assert list(
        AuditLogEntry.objects.filter(organization=org)
        .order_by("created_at")
        .values_list("action", flat=True)
    ) == ["alert_threshold.created", "alert_threshold.created", "alert_threshold.deleted"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "usage", "meter": "nope", "value": "1"}, "unknown_meter"),
        ({"kind": "usage", "meter": "requests", "value": "-1"}, "invalid_value"),
        ({"kind": "usage", "meter": "requests", "value": "1,000"}, "invalid_value"),
        ({"kind": "spend"}, "invalid_value"),
        ({"kind": "bogus", "value": "1"}, "invalid_kind"),
        (["kind"], "validation_error"),
    ],
)
def test_bad_threshold_requests_are_problems(api, meters, body, code):
    assert_problem(api.post(THRESHOLDS, body, format="json"), 400, code)
    assert AlertThreshold.objects.count() == 0


def test_a_read_only_token_cannot_add_thresholds(org, meters):
    client = bearer_client(ApiTokenFactory(organization=org, scopes=["billing:read"]))
    assert client.get(THRESHOLDS).status_code == 200
    response = client.post(THRESHOLDS, {"kind": "spend", "value": "1"}, format="json")
    assert_problem(response, 403, "insufficient_scope")


def test_the_operator_sets_thresholds_customers_cannot_remove(api, admin_api, org, meters):
    response = admin_api.post(
        THRESHOLDS, {"organization": "acme", "kind": "spend", "value": "1000"}, format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["set_by_operator"] is True
    assert [row["id"] for row in api.get(THRESHOLDS).json()["results"]] == [created["id"]]
    assert_problem(api.delete(f"{THRESHOLDS}/{created['id']}"), 403, "operator_threshold")
    listed = admin_api.get(THRESHOLDS, {"organization": str(org.id)}).json()
    assert [row["id"] for row in listed["results"]] == [created["id"]]
    assert admin_api.delete(f"{THRESHOLDS}/{created['id']}").status_code == 204


def test_operator_requests_name_an_existing_organization(admin_api, meters):
    body = {"kind": "spend", "value": "1"}
    assert_problem(admin_api.post(THRESHOLDS, body, format="json"), 400, "validation_error")
    response = admin_api.post(THRESHOLDS, {**body, "organization": "nobody"}, format="json")
    assert_problem(response, 404, "not_found")
    assert_problem(admin_api.get(ALERTS), 400, "validation_error")


def test_another_orgs_thresholds_and_alerts_stay_hidden(api, other_api, org, other_org, meters):
    theirs = threshold(other_org, value="1")
    AlertFiring.objects.create(
        organization=other_org,
        threshold=theirs,
        key=f"threshold:{theirs.id}",
        meter="requests",
        period_start=at(2026, 1, 1),
        value=D(5),
        limit=D(1),
    )
    assert api.get(THRESHOLDS).json()["results"] == []
    assert api.get(ALERTS).json()["results"] == []
    assert_problem(api.delete(f"{THRESHOLDS}/{theirs.id}"), 404, "not_found")
    assert_problem(api.delete(f"{THRESHOLDS}/not-a-uuid"), 404, "not_found")
    assert AlertThreshold.objects.filter(pk=theirs.pk).exists()
    assert len(other_api.get(ALERTS).json()["results"]) == 1


def test_alerts_are_listed_newest_first_a_page_at_a_time(api, org, meters):
    limit = threshold(org, value="1")
    for month in (1, 2, 3):
        AlertFiring.objects.create(
            organization=org,
            threshold=limit,
            key=f"threshold:{limit.id}",
            meter="requests",
            period_start=at(2026, month, 1),
            value=D(month * 10),
            limit=D(1),
            fired_at=at(2026, month, 2),
        )
    AlertFiring.objects.create(
        organization=org,
        source="soft_quota",
        key="soft_quota:requests",
        meter="requests",
        period_start=at(2026, 3, 1),
        value=D(7),
        limit=D(5),
        fired_at=at(2026, 3, 3),
    )
    first = api.get(ALERTS, {"limit": 2}).json()
    assert [row["kind"] for row in first["results"]] == ["soft_quota", "usage"]
    assert first["results"][0]["threshold"] is None
    assert first["results"][1]["value"] == "30"
    second = api.get(first["next"]).json()
    assert [row["period_start"] for row in second["results"]] == [
        "2026-02-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    ]
    assert second["next"] is None


# --- Portal --------------------------------------------------------------------------------
def alerts_url(org) -> str:
    return reverse("org_billing:alerts", kwargs={"slug": org.slug})


def test_the_alerts_page_adds_and_removes_thresholds(client, org, owner, meters):
    client.force_login(owner)
    page = client.get(alerts_url(org))
    assert page.status_code == 200
    assert b"No thresholds yet" in page.content
    add = reverse("org_billing:alert_threshold_add", kwargs={"slug": org.slug})
    response = client.post(
        add,
        {"threshold-kind": "usage", "threshold-meter": "requests", "threshold-value": "5000"},
    )
    assert response.status_code == 302
    [created] = AlertThreshold.objects.filter(organization=org)
    assert (created.kind, created.meter.code, created.value) == ("usage", "requests", D(5000))
    page = client.get(alerts_url(org))
    assert b"5,000 requests" in page.content
    bad = client.post(
        add, {"threshold-kind": "usage", "threshold-meter": "", "threshold-value": "1"}
    )
    assert bad.status_code == 200 and b"No meter" in bad.content
    delete = reverse(
        "org_billing:alert_threshold_delete", kwargs={"slug": org.slug, "threshold_id": created.id}
    )
    assert client.post(delete).status_code == 302
    assert not AlertThreshold.objects.exists()


def test_viewers_see_alerts_but_cannot_change_them(client, org, meters):
    viewer = MembershipFactory(organization=org, role=Role.VIEWER).user
    client.force_login(viewer)
    assert client.get(alerts_url(org)).status_code == 200
    add = reverse("org_billing:alert_threshold_add", kwargs={"slug": org.slug})
    response = client.post(add, {"threshold-kind": "spend", "threshold-value": "10"})
    assert response.status_code == 403
    assert not AlertThreshold.objects.exists()


def test_the_portal_cannot_remove_another_orgs_threshold(client, org, owner, other_org, meters):
    theirs = threshold(other_org)
    client.force_login(owner)
    delete = reverse(
        "org_billing:alert_threshold_delete", kwargs={"slug": org.slug, "threshold_id": theirs.id}
    )
    assert client.post(delete).status_code == 404
    assert AlertThreshold.objects.filter(pk=theirs.pk).exists()
    other_page = client.get(alerts_url(other_org))
    assert other_page.status_code == 404


# --- Credentials: which token kinds and scopes may call each endpoint -----------------------
# (method, path, {token kind: granting scope}, body), in the format of the pricing endpoints'
# table, so tests/portal/test_api.py can count these routes as covered.
ALERT_ENDPOINTS = [
    (
        "get",
        "/api/v1/alert-thresholds",
        {"org": "billing:read", "operator": "admin"},
        None,
    ),
    (
        "post",
        "/api/v1/alert-thresholds",
        {"org": "billing:write", "operator": "admin"},
        {"kind": "spend", "value": "10", "organization": "acme"},
    ),
    (
        "delete",
        "/api/v1/alert-thresholds/{threshold}",
        {"org": "billing:write", "operator": "admin"},
        None,
    ),
    ("get", "/api/v1/alerts", {"org": "billing:read", "operator": "admin"}, None),
    (
        "post",
        "/api/v1/simulations",
        {"org": "billing:read", "operator": "admin"},
        {"plan": "pro", "organization": "acme"},
    ),
]
CREDENTIAL_IDS = [f"{method.upper()} {path}" for method, path, _kinds, _body in ALERT_ENDPOINTS]


def credential_call(client, method, path, body, org):
    if "{threshold}" in path:
        path = path.replace("{threshold}", str(threshold(org, kind="spend", value="5").id))
    if method == "get":
        return client.get(path, {"organization": "acme"})
    if method == "delete":
        return client.delete(path)
    return client.post(path, body, format="json")


def token_for(kind, org, scopes):
    return ApiTokenFactory(kind=kind, organization=org if kind == "org" else None, scopes=scopes)


@pytest.mark.parametrize(("method", "path", "kinds", "body"), ALERT_ENDPOINTS, ids=CREDENTIAL_IDS)
def test_alert_endpoints_without_a_token_are_401(
    anonymous_api, org, catalog, method, path, kinds, body
):
    response = credential_call(anonymous_api, method, path, body, org)
    assert_problem(response, 401, "authentication_required")


@pytest.mark.parametrize(("method", "path", "kinds", "body"), ALERT_ENDPOINTS, ids=CREDENTIAL_IDS)
def test_alert_endpoints_refuse_tokens_without_the_scope(org, catalog, method, path, kinds, body):
    for kind in ("org", "operator"):
        scopes = ["keys:write"] if kind == "org" else ["gate:verify", "usage:write"]
        client = bearer_client(token_for(kind, org, scopes))
        assert_problem(credential_call(client, method, path, body, org), 403, "insufficient_scope")
    assert AlertThreshold.objects.filter(kind="spend", value=10).count() == 0


@pytest.mark.parametrize(("method", "path", "kinds", "body"), ALERT_ENDPOINTS, ids=CREDENTIAL_IDS)
def test_alert_endpoints_let_the_granting_scope_through(org, catalog, method, path, kinds, body):
    subscribe(org)
    for kind, scope in kinds.items():
        client = bearer_client(token_for(kind, org, [scope]))
        response = credential_call(client, method, path, body, org)
        assert response.status_code in (200, 201, 204), (kind, response.content)


def test_the_alerts_page_lists_firings_and_anomalies(client, org, owner, meters):
    limit = threshold(org, value="10")
    operator_limit = threshold(org, kind="spend", value="900", by_operator=True)
    AlertFiring.objects.create(
        organization=org,
        threshold=limit,
        key=f"threshold:{limit.id}",
        meter="requests",
        period_start=at(2026, 1, 1),
        value=D(12),
        limit=D(10),
    )
    AlertFiring.objects.create(
        organization=org,
        source="soft_quota",
        key="soft_quota:requests",
        meter="requests",
        period_start=at(2026, 1, 1),
        value=D(7),
        limit=D(5),
    )
    UsageAnomaly.objects.create(
        organization=org,
        meter=Meter.objects.get(code="requests"),
        day=date(2026, 1, 3),
        observed=D(12400),
        median=D(1000),
        mad=D(50),
        score=D("153.786"),
        explanation="Usage on 2026-01-03 was 12,400 requests.",
    )
    client.force_login(owner)
    content = client.get(alerts_url(org)).content.decode()
    assert "Soft quota of requests" in content and "Usage of requests" in content
    assert "Usage on 2026-01-03 was 12,400 requests." in content
    assert "Provider" in content
    assert "$900.00" in content  # a spend threshold is an amount
    # The operator's threshold has no remove button; the customer's has one.
    assert str(limit.id) in content
    assert f"{operator_limit.id}/delete" not in content
