"""The webhook endpoints API: CRUD, secrets and rotation, test events, the delivery log,
re-delivery and replay, URL policy, and tenant isolation.

Deliveries are queued with `transaction.on_commit`; these tests run inside a transaction
that never commits, so nothing is ever sent over the network.
"""

import base64
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.audit import Actor
from portal.models import ApiToken, AuditLogEntry
from portal.scopes import ORG_SCOPES
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory
from webhooks import catalog, endpoints
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from webhooks.secrets import decrypt, encrypt, fingerprint, new_secret
from webhooks.services import emit

PROBLEM = "application/problem+json"
SECRET_PATTERN = re.compile(r"^whsec_([A-Za-z0-9+/]+={0,2})$")
URL = "https://hooks.example.com/tollgate"


# --- Fixtures -----------------------------------------------------------------------------
def make_hook(organization, url: str = URL, **fields) -> WebhookEndpoint:
    fields.setdefault("environment", "live")
    return WebhookEndpoint.objects.create(
        organization=organization, url=url, secret_encrypted=encrypt(new_secret()), **fields
    )


@pytest.fixture
def hook(org):
    return make_hook(org)


@pytest.fixture
def other_hook(other_org):
    return make_hook(other_org, "https://globex.example.com/hooks")


@pytest.fixture
def key_event(org, hook):
    """A key.created event of `org`, delivered (pending) to `hook`."""
    return emit(organization=org, type="key.created", data={"name": "ci"})


def make_event(organization, type="key.created", *, environment="live", age=timedelta(0)):
    event = emit(organization=organization, type=type, data={}, environment=environment)
    if age:
        Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - age)
        event.refresh_from_db()
    return event


def make_attempt(hook, event, *, status_code=200, minutes_ago=0, error=""):
    delivery = Delivery.objects.filter(event=event, endpoint=hook).first() or (
        Delivery.objects.create(event=event, endpoint=hook)
    )
    return DeliveryAttempt.objects.create(
        delivery=delivery,
        endpoint=hook,
        event_id=event.id,
        attempted_at=timezone.now() - timedelta(minutes=minutes_ago),
        request_headers={"webhook-id": event.id, "content-type": "application/json"},
        status_code=status_code,
        response_body="ok" if status_code else "",
        duration_ms=42,
        error=error,
    )


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    return body


def assert_secret_format(secret: str) -> None:
    match = SECRET_PATTERN.match(secret)
    assert match, secret
    assert 24 <= len(base64.b64decode(match.group(1), validate=True)) <= 64


# --- Credentials and scopes ---------------------------------------------------------------
# (method, path, token kinds and the scope each needs, a valid body). Imported by
# tests/portal/test_api.py, whose route coverage test turns <str:endpoint_id> into {endpoint}.
WEBHOOK_ENDPOINTS = [
    ("get", "/api/v1/webhook-endpoints", {"org": "webhooks:read"}, None),
    (
        "post",
        "/api/v1/webhook-endpoints",
        {"org": "webhooks:write"},
        {"url": URL, "environment": "live"},
    ),
    ("get", "/api/v1/webhook-endpoints/{endpoint}", {"org": "webhooks:read"}, None),
    (
        "patch",
        "/api/v1/webhook-endpoints/{endpoint}",
        {"org": "webhooks:write"},
        {"description": "new"},
    ),
    ("delete", "/api/v1/webhook-endpoints/{endpoint}", {"org": "webhooks:write"}, None),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/disable", {"org": "webhooks:write"}, {}),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/enable", {"org": "webhooks:write"}, {}),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/rotate-secret", {"org": "webhooks:write"}, {}),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/test", {"org": "webhooks:write"}, {}),
    ("get", "/api/v1/webhook-endpoints/{endpoint}/attempts", {"org": "webhooks:read"}, None),
    (
        "post",
        "/api/v1/webhook-endpoints/{endpoint}/replay",
        {"org": "webhooks:write"},
        "since",
    ),
    ("get", "/api/v1/events", {"org": "webhooks:read"}, None),
    ("post", "/api/v1/events/{event}/redeliver", {"org": "webhooks:write"}, {}),
]
WEBHOOK_IDS = [f"{method.upper()} {path}" for method, path, _kinds, _body in WEBHOOK_ENDPOINTS]


def _call(client, method, path, body, hook, event):
    url = path.replace("{endpoint}", str(hook.pk)).replace("{event}", event.id)
    if body == "since":
        body = {"since": (timezone.now() - timedelta(hours=1)).isoformat()}
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, format="json")


def _state() -> list:
    return [
        list(
            WebhookEndpoint.objects.order_by("pk").values_list(
                "pk", "url", "description", "status", "secret_encrypted"
            )
        ),
        Event.objects.count(),
        Delivery.objects.count(),
        AuditLogEntry.objects.count(),
    ]


@pytest.mark.parametrize(("method", "path", "kinds", "body"), WEBHOOK_ENDPOINTS, ids=WEBHOOK_IDS)
def test_requests_without_a_token_are_refused(
    anonymous_api, hook, key_event, method, path, kinds, body
):
    before = _state()
    response = _call(anonymous_api, method, path, body, hook, key_event)
    assert_problem(response, 401, "authentication_required")
    assert _state() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), WEBHOOK_ENDPOINTS, ids=WEBHOOK_IDS)
def test_operator_tokens_get_wrong_token_kind(hook, key_event, method, path, kinds, body):
    client = bearer_client(ApiTokenFactory(kind=ApiToken.Kind.OPERATOR, organization=None))
    before = _state()
    response = _call(client, method, path, body, hook, key_event)
    assert_problem(response, 403, "wrong_token_kind")
    assert _state() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), WEBHOOK_ENDPOINTS, ids=WEBHOOK_IDS)
def test_tokens_without_a_webhooks_scope_are_refused(
    org, hook, key_event, method, path, kinds, body
):
    others = [scope for scope in ORG_SCOPES if not scope.startswith("webhooks:")]
    client = bearer_client(ApiTokenFactory(organization=org, scopes=others))
    before = _state()
    response = _call(client, method, path, body, hook, key_event)
    assert kinds["org"] in assert_problem(response, 403, "insufficient_scope")["detail"]
    assert _state() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), WEBHOOK_ENDPOINTS, ids=WEBHOOK_IDS)
def test_read_tokens_read_and_only_write_tokens_write(
    org, hook, key_event, method, path, kinds, body
):
    client = bearer_client(ApiTokenFactory(organization=org, scopes=["webhooks:read"]))
    before = _state()
    response = _call(client, method, path, body, hook, key_event)
    if kinds["org"] == "webhooks:write":
        assert_problem(response, 403, "insufficient_scope")
        assert _state() == before
        writer = bearer_client(ApiTokenFactory(organization=org, scopes=["webhooks:write"]))
        response = _call(writer, method, path, body, hook, key_event)
    assert response.status_code in (200, 201, 202, 204), response.content


# --- Create, read, update, delete ---------------------------------------------------------
def test_creating_an_endpoint_returns_its_secret_once(api, org):
    response = api.post(
        "/api/v1/webhook-endpoints",
        {
            "url": URL,
            "environment": "live",
            "event_types": ["invoice.paid", "key.created", "invoice.paid"],
            "description": "Billing sync",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"  # it holds the secret
    body = response.json()
    assert_secret_format(body["secret"])
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.organization == org
    assert decrypt(endpoint.secret_encrypted) == body["secret"]
    assert body["secret"] not in endpoint.secret_encrypted
    assert body["secret_fingerprint"] == fingerprint(body["secret"])
    assert body["event_types"] == ["invoice.paid", "key.created"]
    assert body["status"] == "enabled" and body["disabled_reason"] == ""
    assert body["previous_secret_expires_at"] is None
    assert {"id", "url", "description", "environment", "created_at"} <= set(body)

    # Never again: not in the list, not in the detail, not in the audit log.
    listed = api.get("/api/v1/webhook-endpoints").json()["results"]
    detail = api.get(f"/api/v1/webhook-endpoints/{endpoint.pk}").json()
    assert "secret" not in listed[0] and "secret" not in detail
    assert body["secret"] not in str(listed) + str(detail)
    audit = AuditLogEntry.objects.get(action="webhook_endpoint.created")
    assert audit.target_id == str(endpoint.pk)
    assert body["secret"] not in str(audit.changes)


def test_new_secrets_are_whsec_and_24_to_64_random_bytes():
    seen = set()
    for _ in range(20):
        secret = new_secret()
        assert_secret_format(secret)
        seen.add(secret)
    assert len(seen) == 20


def test_an_empty_event_type_list_means_every_type(api):
    body = api.post(
        "/api/v1/webhook-endpoints",
        {"url": URL, "environment": "live", "event_types": []},
        format="json",
    ).json()
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["event_types"] == [] and body["environment"] == "live"
    assert all(endpoint.wants(name) for name in catalog.CATALOG)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, "validation_error", "url"),
        ({"url": URL, "environment": None}, "validation_error", "environment"),
        ({"url": ""}, "validation_error", "url"),
        ({"url": "ftp://example.com/x"}, "webhook_url_invalid", "url"),
        ({"url": "https://"}, "webhook_url_invalid", "url"),
        ({"url": "not a url"}, "webhook_url_invalid", "url"),
        ({"url": "https://user:pass@example.com/x"}, "webhook_url_invalid", "url"),
        ({"url": "https://example.com:99999/x"}, "webhook_url_invalid", "url"),
        ({"url": "https://example.com/" + "a" * 2000}, "validation_error", "url"),
        ({"url": URL, "environment": "staging"}, "validation_error", "environment"),
        ({"url": URL, "event_types": ["nope.nothing"]}, "unknown_event_type", "event_types"),
        ({"url": URL, "event_types": "invoice.paid"}, "validation_error", "event_types"),
        ({"url": URL, "description": "x" * 501}, "validation_error", "description"),
        ({"url": "https://exa\u0000mple.com"}, "validation_error", "url"),
    ],
)
def test_bad_input_is_a_problem_with_a_stable_code_and_creates_nothing(api, body, code, field):
    body = {"environment": "live", **body}
    response = api.post("/api/v1/webhook-endpoints", body, format="json")
    problem = assert_problem(response, 400, code)
    assert field in {error["field"] for error in problem["errors"]}
    assert not WebhookEndpoint.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_event_types_are_checked_against_the_catalog_as_it_is_at_call_time(api, monkeypatch):
    body = {"url": URL, "environment": "live", "event_types": ["widget.polished"]}
    assert_problem(
        api.post("/api/v1/webhook-endpoints", body, format="json"), 400, "unknown_event_type"
    )
    monkeypatch.setitem(
        catalog.CATALOG,
        "widget.polished",
        catalog.EventType("widget.polished", "A widget was polished.", {"type": "object"}),
    )
    response = api.post("/api/v1/webhook-endpoints", body, format="json")
    assert response.status_code == 201, response.content


def test_a_repeated_idempotency_key_replays_the_same_endpoint_and_secret(api):
    body = {"url": URL, "environment": "live"}
    first = api.post(
        "/api/v1/webhook-endpoints", body, format="json", HTTP_IDEMPOTENCY_KEY="create-1"
    )
    again = api.post(
        "/api/v1/webhook-endpoints", body, format="json", HTTP_IDEMPOTENCY_KEY="create-1"
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["secret"] == again.json()["secret"]
    assert WebhookEndpoint.objects.count() == 1


def test_the_environment_must_be_named(api):
    response = api.post("/api/v1/webhook-endpoints", {"url": URL}, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["field"] == "environment"
    assert not WebhookEndpoint.objects.exists()


def test_a_body_that_is_not_a_json_object_is_refused(api):
    for payload in ("[1, 2]", "nope", '"text"'):
        response = api.post("/api/v1/webhook-endpoints", payload, content_type="application/json")
        assert response.status_code == 400, response.content
        assert response["Content-Type"] == PROBLEM
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "webhook_url_https"),
        ("https://127.0.0.1/x", "webhook_target_private"),
        ("https://10.1.2.3:8443/x", "webhook_target_private"),
        ("https://192.168.0.10/x", "webhook_target_private"),
        ("https://169.254.169.254/latest/meta-data", "webhook_target_private"),
        ("https://[::1]/x", "webhook_target_private"),
        ("https://[::ffff:127.0.0.1]/x", "webhook_target_private"),
        ("https://localhost/x", "webhook_target_private"),
        ("https://api.localhost/x", "webhook_target_private"),
        ("https://2130706433/x", "webhook_target_private"),
        ("https://0x7f.1/x", "webhook_target_private"),
        ("https://intranet/x", "webhook_target_private"),
    ],
)
def test_live_endpoints_refuse_http_and_private_targets(api, settings, url, code):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = api.post(
        "/api/v1/webhook-endpoints", {"url": url, "environment": "live"}, format="json"
    )
    assert_problem(response, 400, code)
    assert not WebhookEndpoint.objects.exists()


def test_private_and_http_targets_are_allowed_when_the_setting_says_so(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    for url in ("http://localhost:8000/hooks", "https://10.0.0.5/x", "http://receiver/hooks"):
        response = api.post(
            "/api/v1/webhook-endpoints", {"url": url, "environment": "live"}, format="json"
        )
        assert response.status_code == 201, response.content


def test_test_endpoints_may_use_plain_http_to_public_hosts(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = api.post(
        "/api/v1/webhook-endpoints",
        {"url": "http://hooks.example.com/x", "environment": "test"},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_the_list_is_newest_first_filterable_and_never_shows_secrets(api, org, other_hook):
    older = make_hook(org, "https://a.example.com/", environment="test")
    WebhookEndpoint.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - timedelta(days=1)
    )
    newer = make_hook(org, "https://b.example.com/", status="disabled")
    results = api.get("/api/v1/webhook-endpoints").json()["results"]
    assert [row["id"] for row in results] == [str(newer.pk), str(older.pk)]
    assert all("secret" not in row for row in results)
    test_only = api.get("/api/v1/webhook-endpoints?environment=test").json()["results"]
    assert [row["id"] for row in test_only] == [str(older.pk)]
    disabled = api.get("/api/v1/webhook-endpoints?status=disabled").json()["results"]
    assert [row["id"] for row in disabled] == [str(newer.pk)]
    assert_problem(api.get("/api/v1/webhook-endpoints?status=broken"), 400, "validation_error")


def test_patch_changes_only_the_fields_given_and_checks_the_url_again(api, hook, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    path = f"/api/v1/webhook-endpoints/{hook.pk}"
    response = api.patch(
        path, {"event_types": ["invoice.paid"], "description": "Only invoices"}, format="json"
    )
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert hook.event_types == ["invoice.paid"] and hook.url == URL
    assert hook.description == "Only invoices"
    audit = AuditLogEntry.objects.get(action="webhook_endpoint.updated")
    assert audit.changes["after"] == {
        "event_types": ["invoice.paid"],
        "description": "Only invoices",
    }

    assert_problem(
        api.patch(path, {"url": "http://hooks.example.com/"}, format="json"),
        400,
        "webhook_url_https",
    )
    # Moving a plain-http test endpoint to live is checked against live's rules.
    api.patch(path, {"environment": "test", "url": "http://hooks.example.com/"}, format="json")
    assert_problem(
        api.patch(path, {"environment": "live"}, format="json"), 400, "webhook_url_https"
    )
    hook.refresh_from_db()
    assert hook.environment == "test" and hook.url == "http://hooks.example.com/"

    assert api.patch(path, {"event_types": []}, format="json").json()["event_types"] == []


def test_disable_and_enable(api, hook):
    path = f"/api/v1/webhook-endpoints/{hook.pk}"
    body = api.post(f"{path}/disable", {"reason": "maintenance"}, format="json").json()
    assert body["status"] == "disabled" and body["disabled_reason"] == "maintenance"
    hook.refresh_from_db()
    assert hook.disabled_at is not None
    WebhookEndpoint.objects.filter(pk=hook.pk).update(failing_since=timezone.now())

    body = api.post(f"{path}/enable", {}, format="json").json()
    assert body["status"] == "enabled" and body["disabled_reason"] == ""
    hook.refresh_from_db()
    assert hook.disabled_at is None and hook.failing_since is None
    actions = list(AuditLogEntry.objects.order_by("created_at").values_list("action", flat=True))
    assert actions == ["webhook_endpoint.disabled", "webhook_endpoint.enabled"]


def test_disabling_fails_pending_deliveries_and_no_new_events_come(api, org, hook, key_event):
    pending = Delivery.objects.get(event=key_event, endpoint=hook)
    api.post(f"/api/v1/webhook-endpoints/{hook.pk}/disable", {}, format="json")
    pending.refresh_from_db()
    assert pending.status == "failed" and pending.last_error == "endpoint_disabled"
    event = emit(organization=org, type="key.created", data={})
    assert not Delivery.objects.filter(event=event).exists()


def test_enabling_checks_the_url_against_todays_policy(api, org, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    private = make_hook(org, "http://10.0.0.5/x", status="disabled")
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = api.post(f"/api/v1/webhook-endpoints/{private.pk}/enable", {}, format="json")
    assert_problem(response, 400, "webhook_target_private")
    private.refresh_from_db()
    assert private.status == "disabled"


def test_delete_removes_the_endpoint_and_its_log_but_keeps_the_events(api, hook, key_event):
    make_attempt(hook, key_event)
    response = api.delete(f"/api/v1/webhook-endpoints/{hook.pk}")
    assert response.status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=hook.pk).exists()
    assert not DeliveryAttempt.objects.exists() and not Delivery.objects.exists()
    assert Event.objects.filter(pk=key_event.pk).exists()
    assert AuditLogEntry.objects.filter(action="webhook_endpoint.deleted").count() == 1
    assert_problem(api.get(f"/api/v1/webhook-endpoints/{hook.pk}"), 404, "not_found")


# --- Secret rotation ------------------------------------------------------------------------
def test_rotation_keeps_the_previous_secret_signing_for_24_hours(api, hook):
    old_secret = decrypt(hook.secret_encrypted)
    before = timezone.now()
    response = api.post(f"/api/v1/webhook-endpoints/{hook.pk}/rotate-secret", {}, format="json")
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert_secret_format(body["secret"])
    assert body["secret"] != old_secret
    hook.refresh_from_db()
    assert decrypt(hook.secret_encrypted) == body["secret"]
    assert decrypt(hook.previous_secret_encrypted) == old_secret
    overlap = hook.previous_secret_expires_at - before
    assert timedelta(hours=24) <= overlap < timedelta(hours=24, seconds=30)
    assert body["previous_secret_expires_at"] is not None
    assert body["secret_fingerprint"] == fingerprint(body["secret"])

    detail = api.get(f"/api/v1/webhook-endpoints/{hook.pk}").json()
    assert "secret" not in detail and detail["previous_secret_expires_at"]
    audit = AuditLogEntry.objects.get(action="webhook_endpoint.secret_rotated")
    assert old_secret not in str(audit.changes) and body["secret"] not in str(audit.changes)


def test_a_second_rotation_retires_the_oldest_secret(api, hook):
    path = f"/api/v1/webhook-endpoints/{hook.pk}/rotate-secret"
    first = api.post(path, {}, format="json").json()["secret"]
    second = api.post(path, {}, format="json").json()["secret"]
    hook.refresh_from_db()
    assert decrypt(hook.secret_encrypted) == second
    assert decrypt(hook.previous_secret_encrypted) == first


def test_the_previous_secret_is_not_reported_after_its_overlap(api, hook):
    api.post(f"/api/v1/webhook-endpoints/{hook.pk}/rotate-secret", {}, format="json")
    WebhookEndpoint.objects.filter(pk=hook.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    detail = api.get(f"/api/v1/webhook-endpoints/{hook.pk}").json()
    assert detail["previous_secret_expires_at"] is None


# --- Test events ----------------------------------------------------------------------------
def test_a_test_event_is_one_ping_delivery_to_that_endpoint_only(
    api, org, hook, django_capture_on_commit_callbacks
):
    everything = make_hook(org, "https://all.example.com/")  # wants every type, ping included
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(f"/api/v1/webhook-endpoints/{hook.pk}/test", {}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    event = Event.objects.get()
    assert event.type == "ping" and event.organization == org
    assert body["event_id"] == body["webhook_id"] == event.id
    delivery = Delivery.objects.get()
    assert delivery.event == event and delivery.endpoint == hook
    assert delivery.status == "pending" and delivery.next_attempt_at <= timezone.now()
    assert body["deliveries"] == [{"id": str(delivery.pk), "endpoint": str(hook.pk)}]
    assert not Delivery.objects.filter(endpoint=everything).exists()
    assert len(callbacks) == 1  # the nudge, after commit
    # The same envelope as every emitted event, valid against the catalog's schema.
    assert catalog.payload_errors(event.payload) == []
    assert event.payload["id"] == event.id and event.payload["data"]["message"]
    assert AuditLogEntry.objects.filter(action="webhook_endpoint.test_sent").count() == 1


def test_a_test_event_to_a_disabled_endpoint_is_refused(api, org):
    disabled = make_hook(org, status="disabled")
    response = api.post(f"/api/v1/webhook-endpoints/{disabled.pk}/test", {}, format="json")
    assert_problem(response, 409, "endpoint_disabled")
    assert not Event.objects.exists()


# --- Re-delivery ----------------------------------------------------------------------------
def test_redelivery_sends_the_same_event_again_to_each_endpoint_that_wants_it(api, org, hook):
    invoices_only = make_hook(org, "https://b.example.com/", event_types=["invoice.paid"])
    keys_too = make_hook(org, "https://c.example.com/", event_types=["key.created"])
    make_hook(org, "https://d.example.com/", status="disabled")
    make_hook(org, "https://e.example.com/", environment="test")
    event = make_event(org)
    first = set(Delivery.objects.filter(event=event).values_list("pk", flat=True))
    assert len(first) == 2

    response = api.post(f"/api/v1/events/{event.id}/redeliver", {}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["event_id"] == body["webhook_id"] == event.id
    new = Delivery.objects.filter(event=event).exclude(pk__in=first)
    assert {delivery.endpoint_id for delivery in new} == {hook.pk, keys_too.pk}
    assert {row["id"] for row in body["deliveries"]} == {str(d.pk) for d in new}
    assert all(delivery.status == "pending" for delivery in new)
    assert all(delivery.manual for delivery in new)  # logged as manual when attempted
    assert not Delivery.objects.filter(pk__in=first, manual=True).exists()
    assert not Delivery.objects.filter(endpoint=invoices_only).exists()
    assert Event.objects.count() == 1  # no new event: the webhook-id stays the same
    assert AuditLogEntry.objects.get(action="event.redelivered").target_id == event.id


def test_redelivery_to_one_endpoint(api, org, hook):
    other = make_hook(org, "https://b.example.com/")
    event = make_event(org)
    response = api.post(
        f"/api/v1/events/{event.id}/redeliver", {"endpoint": str(other.pk)}, format="json"
    )
    assert response.status_code == 202, response.content
    assert [row["endpoint"] for row in response.json()["deliveries"]] == [str(other.pk)]
    assert Delivery.objects.filter(event=event, endpoint=other).count() == 2
    assert Delivery.objects.filter(event=event, endpoint=hook).count() == 1


def test_redelivery_refuses_what_cannot_be_delivered(api, org, hook):
    test_hook = make_hook(org, "https://t.example.com/", environment="test")
    disabled = make_hook(org, "https://d.example.com/", status="disabled")
    event = make_event(org)
    path = f"/api/v1/events/{event.id}/redeliver"
    lonely = make_event(org, environment="test")
    before = Delivery.objects.count()
    assert_problem(
        api.post(path, {"endpoint": str(test_hook.pk)}, format="json"), 409, "environment_mismatch"
    )
    assert_problem(
        api.post(path, {"endpoint": str(disabled.pk)}, format="json"), 409, "endpoint_disabled"
    )
    assert_problem(api.post(path, {"endpoint": "nope"}, format="json"), 404, "not_found")
    WebhookEndpoint.objects.filter(environment="test").update(status="disabled")
    assert_problem(
        api.post(f"/api/v1/events/{lonely.id}/redeliver", {}, format="json"),
        409,
        "no_matching_endpoint",
    )
    assert Delivery.objects.count() == before


def test_redelivering_a_ping_goes_only_to_the_endpoint_it_tested(api, org, hook):
    make_hook(org, "https://all.example.com/")
    event_id = api.post(f"/api/v1/webhook-endpoints/{hook.pk}/test", {}, format="json").json()[
        "event_id"
    ]
    response = api.post(f"/api/v1/events/{event_id}/redeliver", {}, format="json")
    assert [row["endpoint"] for row in response.json()["deliveries"]] == [str(hook.pk)]


# --- Replay ---------------------------------------------------------------------------------
def _replay(api, hook, since):
    return api.post(
        f"/api/v1/webhook-endpoints/{hook.pk}/replay",
        {"since": since.isoformat() if hasattr(since, "isoformat") else since},
        format="json",
    )


def test_replay_sends_every_wanted_event_since_then_once(api, org, hook, other_org):
    recent = [make_event(org, age=timedelta(days=days)) for days in (1, 3, 10)]
    make_event(org, age=timedelta(days=13))  # before `since`
    make_event(org, environment="test", age=timedelta(days=1))  # another environment
    make_event(other_org, age=timedelta(days=1))  # another organization
    # An event already delivered twice to this endpoint is still sent once.
    Delivery.objects.create(event=recent[0], endpoint=hook)
    before = {event.pk: Delivery.objects.filter(event=event).count() for event in recent}

    response = _replay(api, hook, timezone.now() - timedelta(days=12))
    assert response.status_code == 202, response.content
    assert response.json()["count"] == 3
    for event in recent:
        assert Delivery.objects.filter(event=event, endpoint=hook).count() == before[event.pk] + 1
    assert Event.objects.count() == 6  # replays make deliveries, never new events
    audit = AuditLogEntry.objects.get(action="webhook_endpoint.replayed")
    assert audit.changes["events"] == 3


def test_replay_respects_the_endpoints_event_types(api, org):
    invoices_only = make_hook(org, event_types=["invoice.paid"])
    make_event(org, "key.created", age=timedelta(hours=2))
    paid = make_event(org, "invoice.paid", age=timedelta(hours=2))
    response = _replay(api, invoices_only, timezone.now() - timedelta(days=1))
    assert response.json()["count"] == 1
    assert Delivery.objects.filter(endpoint=invoices_only, event=paid).count() == 2


def test_replay_leaves_out_pings_sent_to_other_endpoints(api, org, hook):
    other = make_hook(org, "https://b.example.com/")
    api.post(f"/api/v1/webhook-endpoints/{other.pk}/test", {}, format="json")
    api.post(f"/api/v1/webhook-endpoints/{hook.pk}/test", {}, format="json")
    response = _replay(api, hook, timezone.now() - timedelta(minutes=5))
    assert response.json()["count"] == 1


def test_each_replay_request_sends_each_event_once_more(api, org, hook):
    event = make_event(org, age=timedelta(hours=1))
    since = timezone.now() - timedelta(days=1)
    _replay(api, hook, since)
    _replay(api, hook, since)
    assert Delivery.objects.filter(event=event, endpoint=hook).count() == 3


@pytest.mark.parametrize(
    ("since", "code"),
    [
        (timedelta(days=14, minutes=1), "replay_window_exceeded"),
        (timedelta(days=30), "replay_window_exceeded"),
        (-timedelta(hours=1), "invalid_since"),
    ],
)
def test_replay_refuses_since_beyond_14_days_or_in_the_future(api, org, hook, since, code):
    make_event(org, age=timedelta(days=1))
    before = Delivery.objects.count()
    response = _replay(api, hook, timezone.now() - since)
    assert_problem(response, 400, code)
    assert Delivery.objects.count() == before


@pytest.mark.parametrize("since", ["2026-01-01T00:00:00", "yesterday", "", None])
def test_replay_needs_a_time_with_a_zone(api, hook, since):
    response = api.post(
        f"/api/v1/webhook-endpoints/{hook.pk}/replay", {"since": since}, format="json"
    )
    assert_problem(response, 400, "validation_error")


def test_replay_exactly_14_days_back_is_allowed(api, hook):
    response = _replay(api, hook, timezone.now() - timedelta(days=14) + timedelta(seconds=5))
    assert response.status_code == 202, response.content
    assert response.json()["count"] == 0


def test_a_disabled_endpoint_is_not_replayed_to(api, org):
    disabled = make_hook(org, status="disabled")
    assert_problem(
        _replay(api, disabled, timezone.now() - timedelta(hours=1)), 409, "endpoint_disabled"
    )


# --- The delivery log and events -------------------------------------------------------------
def test_attempts_are_listed_newest_first_with_the_documented_fields(api, org, hook):
    event = make_event(org)
    older = make_attempt(hook, event, status_code=500, minutes_ago=10, error="")
    newer = make_attempt(hook, event, status_code=200, minutes_ago=1)
    response = api.get(f"/api/v1/webhook-endpoints/{hook.pk}/attempts")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [row["id"] for row in results] == [str(newer.pk), str(older.pk)]
    row = results[0]
    for field in ("event_id", "webhook_id", "status_code", "duration_ms", "attempted_at", "error"):
        assert field in row
    assert row["event_id"] == row["webhook_id"] == event.id
    assert row["status_code"] == 200 and row["duration_ms"] == 42 and row["succeeded"]
    assert row["event_type"] == "key.created"
    assert row["request_headers"]["webhook-id"] == event.id
    assert row["response_body"] == "ok"


def test_attempts_filter_by_outcome_event_type_and_time(api, org, hook):
    key_event = make_event(org, "key.created")
    invoice_event = make_event(org, "invoice.paid")
    ok = make_attempt(hook, key_event, status_code=204, minutes_ago=30)
    server_error = make_attempt(hook, invoice_event, status_code=503, minutes_ago=20)
    timeout = make_attempt(hook, key_event, status_code=None, minutes_ago=5, error="timeout")
    path = f"/api/v1/webhook-endpoints/{hook.pk}/attempts"

    def ids(query):
        response = api.get(path + query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("?status=succeeded") == [str(ok.pk)]
    assert ids("?status=failed") == [str(timeout.pk), str(server_error.pk)]
    assert ids("?status=5xx") == [str(server_error.pk)]
    assert ids("?status=no_response") == [str(timeout.pk)]
    assert ids("?event_type=invoice.paid") == [str(server_error.pk)]
    since = (timezone.now() - timedelta(minutes=25)).isoformat().replace("+00:00", "Z")
    assert ids(f"?since={since}") == [str(timeout.pk), str(server_error.pk)]
    assert_problem(api.get(path + "?status=maybe"), 400, "validation_error")
    assert_problem(api.get(path + "?since=2026-01-01T00:00:00"), 400, "validation_error")


def test_attempts_are_cursor_paginated(api, org, hook):
    event = make_event(org)
    made = [make_attempt(hook, event, minutes_ago=minutes) for minutes in range(5)]
    path = f"/api/v1/webhook-endpoints/{hook.pk}/attempts?limit=2"
    seen, pages = [], 0
    while path:
        body = api.get(path).json()
        seen += [row["id"] for row in body["results"]]
        path, pages = body["next"], pages + 1
    assert seen == [str(attempt.pk) for attempt in made]  # made newest first
    assert pages == 3


def test_events_are_listed_newest_first_for_the_org_only(api, org, other_org):
    old = make_event(org, age=timedelta(hours=2))
    new = make_event(org, "invoice.paid")
    make_event(other_org)
    results = api.get("/api/v1/events").json()["results"]
    assert [row["id"] for row in results] == [new.id, old.id]
    assert results[0]["webhook_id"] == new.id and results[0]["type"] == "invoice.paid"
    assert {"version", "environment", "created_at", "data"} <= set(results[0])
    only_keys = api.get("/api/v1/events?type=key.created").json()["results"]
    assert [row["id"] for row in only_keys] == [old.id]


# --- Tenant isolation ---------------------------------------------------------------------------
OTHER_ORG_CALLS = [
    ("get", "/api/v1/webhook-endpoints/{endpoint}", None),
    ("patch", "/api/v1/webhook-endpoints/{endpoint}", {"url": "ftp://bad"}),
    ("delete", "/api/v1/webhook-endpoints/{endpoint}", None),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/disable", {}),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/enable", {}),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/rotate-secret", {}),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/test", {}),
    ("get", "/api/v1/webhook-endpoints/{endpoint}/attempts", None),
    ("post", "/api/v1/webhook-endpoints/{endpoint}/replay", {"since": "bad"}),
    ("post", "/api/v1/events/{event}/redeliver", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), OTHER_ORG_CALLS)
def test_another_orgs_endpoints_events_and_attempts_are_not_found(
    api, other_org, other_hook, method, path, body
):
    event = make_event(other_org)
    make_attempt(other_hook, event)
    before = _state()
    url = path.replace("{endpoint}", str(other_hook.pk)).replace("{event}", event.id)
    send = getattr(api, method)
    response = send(url) if method == "get" else send(url, body, format="json")
    assert_problem(response, 404, "not_found")
    assert _state() == before


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00"])
def test_unknown_and_malformed_ids_are_not_found(api, bad_id):
    assert_problem(api.get(f"/api/v1/webhook-endpoints/{bad_id}"), 404, "not_found")
    assert_problem(
        api.post(f"/api/v1/events/{bad_id}/redeliver", {}, format="json"), 404, "not_found"
    )


def test_redelivery_to_another_orgs_endpoint_is_not_found(api, org, hook, other_hook):
    event = make_event(org)
    response = api.post(
        f"/api/v1/events/{event.id}/redeliver", {"endpoint": str(other_hook.pk)}, format="json"
    )
    assert_problem(response, 404, "not_found")
    assert not Delivery.objects.filter(endpoint=other_hook).exists()


def test_lists_never_show_another_orgs_rows(api, org, hook, other_org, other_hook):
    make_attempt(other_hook, make_event(other_org))
    listed = api.get("/api/v1/webhook-endpoints").json()["results"]
    assert [row["id"] for row in listed] == [str(hook.pk)]
    assert api.get("/api/v1/events").json()["results"] == []


# --- Services directly ---------------------------------------------------------------------------
def test_services_audit_every_write_with_the_actor(org):
    actor = Actor.system("test")
    hook, _secret = endpoints.webhook_endpoint_create(
        actor=actor, organization=org, url=URL, environment="live"
    )
    endpoints.webhook_endpoint_update(actor=actor, endpoint=hook, description="x")
    endpoints.webhook_endpoint_disable(actor=actor, endpoint=hook)
    endpoints.webhook_endpoint_disable(actor=actor, endpoint=hook)  # no change, no row
    endpoints.webhook_endpoint_enable(actor=actor, endpoint=hook)
    endpoints.webhook_endpoint_rotate_secret(actor=actor, endpoint=hook)
    endpoints.webhook_endpoint_send_test(actor=actor, endpoint=hook)
    endpoints.webhook_endpoint_replay(
        actor=actor, endpoint=hook, since=timezone.now() - timedelta(hours=1)
    )
    endpoints.event_redeliver(actor=actor, event=Event.objects.get(), endpoint=hook)
    endpoints.webhook_endpoint_delete(actor=actor, endpoint=hook)
    actions = list(AuditLogEntry.objects.order_by("created_at").values_list("action", flat=True))
    assert actions == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.disabled",
        "webhook_endpoint.enabled",
        "webhook_endpoint.secret_rotated",
        "webhook_endpoint.test_sent",
        "webhook_endpoint.replayed",
        "event.redelivered",
        "webhook_endpoint.deleted",
    ]
    assert set(AuditLogEntry.objects.values_list("organization", flat=True)) == {org.pk}


# --- Concurrency --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_never_lose_a_secret_that_was_handed_out(org):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    hook = make_hook(org)
    barrier = Barrier(2)

    def rotate(_):
        barrier.wait()
        try:
            return endpoints.webhook_endpoint_rotate_secret(
                actor=Actor.system("test"), endpoint=hook
            )[1]
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        handed_out = set(pool.map(rotate, range(2)))
    hook.refresh_from_db()
    # The row lock orders the two: one secret is current, the other signs beside it.
    assert {decrypt(hook.secret_encrypted), decrypt(hook.previous_secret_encrypted)} == handed_out


def test_an_endpoint_whose_secret_no_longer_decrypts_still_lists(api, hook):
    """After a SECRET_KEY change the stored secret cannot be read: the endpoint is still
    listed (fingerprint "unreadable") and can be given a new secret by rotation."""
    WebhookEndpoint.objects.filter(pk=hook.pk).update(secret_encrypted="not-a-fernet-token")
    listed = api.get("/api/v1/webhook-endpoints")
    assert listed.status_code == 200
    [item] = listed.json()["results"]
    assert item["secret_fingerprint"] == "unreadable"
    rotated = api.post(f"/api/v1/webhook-endpoints/{hook.pk}/rotate-secret", {}, format="json")
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")


def test_moving_an_endpoint_to_another_environment_fails_its_pending_deliveries(
    api, org, hook, key_event
):
    [pending] = Delivery.objects.filter(endpoint=hook, status="pending")
    response = api.patch(
        f"/api/v1/webhook-endpoints/{hook.pk}", {"environment": "test"}, format="json"
    )
    assert response.status_code == 200, response.content
    pending.refresh_from_db()
    assert (pending.status, pending.last_error) == ("failed", "environment_changed")
