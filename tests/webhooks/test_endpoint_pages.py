"""Webhook portal pages: who may open them, the secret shown once, edit/disable/enable/delete,
rotation, test events, the delivery log with its filters, re-delivery, replay, isolation.

Deliveries are queued after commit; these tests never commit, so nothing is sent.
"""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditLogEntry, Membership, Organization
from portal.roles import Role
from tests.factories import MembershipFactory, UserFactory
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from webhooks.secrets import decrypt, encrypt, new_secret
from webhooks.services import emit

SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9+/]+={0,2}")
MANAGERS = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
URL = "https://hooks.example.com/tollgate"


@pytest.fixture
def login(client, org):
    def log_in(role: str = Role.OWNER, organization: Organization | None = None) -> Membership:
        membership = MembershipFactory(organization=organization or org, role=role)
        client.force_login(membership.user)
        return membership

    return log_in


def make_hook(organization, url: str = URL, **fields) -> WebhookEndpoint:
    fields.setdefault("environment", "live")
    return WebhookEndpoint.objects.create(
        organization=organization, url=url, secret_encrypted=encrypt(new_secret()), **fields
    )


@pytest.fixture
def hook(org):
    return make_hook(org)


def url_for(name: str, organization, **kwargs) -> str:
    return reverse(f"webhooks:{name}", kwargs={"slug": organization.slug, **kwargs})


def make_attempt(hook, event, *, status_code=200, minutes_ago=0):
    delivery = Delivery.objects.filter(event=event, endpoint=hook).first() or (
        Delivery.objects.create(event=event, endpoint=hook)
    )
    return DeliveryAttempt.objects.create(
        delivery=delivery,
        endpoint=hook,
        event_id=event.id,
        attempted_at=timezone.now() - timedelta(minutes=minutes_ago),
        request_headers={"webhook-id": event.id},
        status_code=status_code,
        response_body=f"body-{status_code}",
        duration_ms=12,
        error="" if status_code else "connection refused",
    )


# Every GET page and the object it names.
PAGES = [
    ("endpoint_list", False),
    ("endpoint_create", False),
    ("endpoint_detail", True),
    ("endpoint_edit", True),
    ("endpoint_delete", True),
    ("endpoint_rotate", True),
    ("endpoint_attempts", True),
]


def page(name: str, with_endpoint: bool, organization, hook) -> str:
    return url_for(name, organization, **({"endpoint_id": hook.id} if with_endpoint else {}))


# --- Roles ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("name", "with_endpoint"), PAGES)
def test_pages_open_for_members_who_manage_keys_and_are_forbidden_to_others(
    client, login, org, hook, role, name, with_endpoint
):
    login(role)
    response = client.get(page(name, with_endpoint, org, hook))
    assert response.status_code == (200 if role in MANAGERS else 403)


@pytest.mark.parametrize(("name", "with_endpoint"), PAGES)
def test_anonymous_visitors_are_sent_to_login(client, org, hook, name, with_endpoint):
    url = page(name, with_endpoint, org, hook)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={url}"


def test_the_navigation_links_webhooks_for_those_who_may_open_them(client, login, org):
    webhooks_url = url_for("endpoint_list", org)
    login(Role.DEVELOPER)
    developer_page = client.get(reverse("portal:dashboard", kwargs={"slug": org.slug}))
    assert webhooks_url in developer_page.content.decode()
    login(Role.VIEWER)
    viewer_page = client.get(reverse("portal:dashboard", kwargs={"slug": org.slug}))
    assert webhooks_url not in viewer_page.content.decode()
    login(Role.OWNER)
    current = client.get(webhooks_url).content.decode()
    assert f'href="{webhooks_url}" aria-current="page"' in current


def test_a_viewer_cannot_change_anything(client, login, org, hook):
    login(Role.VIEWER)
    before = AuditLogEntry.objects.count()
    for name in ("endpoint_disable", "endpoint_rotate", "endpoint_test", "endpoint_delete"):
        assert client.post(url_for(name, org, endpoint_id=hook.id)).status_code == 403
    assert client.post(url_for("endpoint_create", org), {"url": URL}).status_code == 403
    assert AuditLogEntry.objects.count() == before
    assert WebhookEndpoint.objects.count() == 1


# --- Create, edit, disable, enable, delete -------------------------------------------------------
def test_a_new_endpoints_secret_is_shown_once_and_never_again(client, login, org):
    login(Role.DEVELOPER)
    response = client.post(
        url_for("endpoint_create", org),
        {
            "url": URL,
            "environment": "live",
            "event_types": ["invoice.paid", "key.created"],
            "description": "Billing sync",
        },
    )
    assert response.status_code == 200, response.content
    [secret] = set(SECRET_PATTERN.findall(response.content.decode()))
    assert response.content.decode().count(secret) == 1
    assert "no-store" in response["Cache-Control"]
    assert 'data-copy-target="new-secret"' in response.content.decode()
    endpoint = WebhookEndpoint.objects.get(organization=org)
    assert decrypt(endpoint.secret_encrypted) == secret
    assert endpoint.event_types == ["invoice.paid", "key.created"]
    assert AuditLogEntry.objects.filter(action="webhook_endpoint.created").count() == 1
    assert secret not in str(dict(client.session))
    for later in (
        url_for("endpoint_list", org),
        url_for("endpoint_detail", org, endpoint_id=endpoint.id),
    ):
        assert secret not in client.get(later).content.decode()


def test_the_create_form_offers_every_catalog_event_type(client, login, org):
    from webhooks import catalog

    login()
    html = client.get(url_for("endpoint_create", org)).content.decode()
    for name in catalog.CATALOG:
        assert f'value="{name}"' in html


def test_a_refused_url_is_shown_next_to_the_url_field(client, login, org, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    login()
    for url in ("http://hooks.example.com/", "https://127.0.0.1/x", "https://localhost/"):
        response = client.post(url_for("endpoint_create", org), {"url": url, "environment": "live"})
        assert response.status_code == 200
        assert "url" in response.context["form"].errors, url
    assert not WebhookEndpoint.objects.exists()


def test_editing_saves_the_fields_and_checks_the_url(client, login, org, hook, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    login()
    edit = url_for("endpoint_edit", org, endpoint_id=hook.id)
    assert URL in client.get(edit).content.decode()
    response = client.post(
        edit,
        {"url": "https://new.example.com/", "environment": "live", "event_types": ["invoice.paid"]},
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.url == "https://new.example.com/" and hook.event_types == ["invoice.paid"]
    response = client.post(edit, {"url": "http://new.example.com/", "environment": "live"})
    assert "url" in response.context["form"].errors
    hook.refresh_from_db()
    assert hook.url == "https://new.example.com/"


def test_disable_enable_and_delete(client, login, org, hook):
    login()
    client.post(url_for("endpoint_disable", org, endpoint_id=hook.id), {"reason": "moving"})
    hook.refresh_from_db()
    assert hook.status == "disabled" and hook.disabled_reason == "moving"
    detail = client.get(url_for("endpoint_detail", org, endpoint_id=hook.id)).content.decode()
    assert "moving" in detail and url_for("endpoint_enable", org, endpoint_id=hook.id) in detail

    client.post(url_for("endpoint_enable", org, endpoint_id=hook.id))
    hook.refresh_from_db()
    assert hook.status == "enabled" and hook.disabled_reason == ""

    delete = url_for("endpoint_delete", org, endpoint_id=hook.id)
    assert client.get(delete).status_code == 200
    assert WebhookEndpoint.objects.filter(pk=hook.pk).exists()  # GET only asks
    response = client.post(delete)
    assert response.status_code == 302 and response["Location"] == url_for("endpoint_list", org)
    assert not WebhookEndpoint.objects.filter(pk=hook.pk).exists()


def test_disable_enable_and_test_need_a_post(client, login, org, hook):
    login()
    for name in ("endpoint_disable", "endpoint_enable", "endpoint_test", "endpoint_replay"):
        assert client.get(url_for(name, org, endpoint_id=hook.id)).status_code == 405


# --- Rotation and test events ---------------------------------------------------------------------
def test_rotating_shows_the_new_secret_once_and_keeps_the_old_for_24_hours(
    client, login, org, hook
):
    login()
    old = decrypt(hook.secret_encrypted)
    rotate = url_for("endpoint_rotate", org, endpoint_id=hook.id)
    assert "24 hours" in client.get(rotate).content.decode()
    hook.refresh_from_db()
    assert decrypt(hook.secret_encrypted) == old  # GET changes nothing
    response = client.post(rotate)
    [secret] = set(SECRET_PATTERN.findall(response.content.decode()))
    assert secret != old and "no-store" in response["Cache-Control"]
    hook.refresh_from_db()
    assert decrypt(hook.secret_encrypted) == secret
    assert decrypt(hook.previous_secret_encrypted) == old
    assert hook.previous_secret_expires_at > timezone.now() + timedelta(hours=23)


def test_sending_a_test_event_makes_one_ping_delivery_for_this_endpoint(client, login, org, hook):
    make_hook(org, "https://other.example.com/")
    login()
    response = client.post(url_for("endpoint_test", org, endpoint_id=hook.id))
    assert response["Location"] == url_for("endpoint_attempts", org, endpoint_id=hook.id)
    delivery = Delivery.objects.get()
    assert delivery.endpoint == hook and delivery.event.type == "ping"


# --- The delivery log, re-delivery and replay ---------------------------------------------
def test_the_log_lists_attempts_newest_first_and_filters_them(client, login, org, hook):
    key_event = emit(organization=org, type="key.created", data={})
    invoice_event = emit(organization=org, type="invoice.paid", data={})
    make_attempt(hook, key_event, status_code=200, minutes_ago=30)
    make_attempt(hook, invoice_event, status_code=500, minutes_ago=10)
    make_attempt(hook, key_event, status_code=None, minutes_ago=1)
    login()
    log = url_for("endpoint_attempts", org, endpoint_id=hook.id)

    def bodies(query=""):
        html = client.get(log + query).content.decode()
        return re.findall(r"body-(\w+)", html)

    assert bodies() == ["None", "500", "200"]
    assert bodies("?status=failed") == ["None", "500"]
    assert bodies("?status=succeeded") == ["200"]
    assert bodies("?event_type=invoice.paid") == ["500"]
    assert bodies("?status=bogus") == ["None", "500", "200"]  # a bad filter is ignored


def test_redeliver_sends_the_same_event_to_this_endpoint_again(client, login, org, hook):
    event = emit(organization=org, type="key.created", data={})
    make_attempt(hook, event, status_code=500)
    login()
    log = url_for("endpoint_attempts", org, endpoint_id=hook.id)
    redeliver = url_for("event_redeliver", org, endpoint_id=hook.id, event_id=event.id)
    assert redeliver in client.get(log).content.decode()
    response = client.post(redeliver)
    assert response["Location"] == log
    assert Delivery.objects.filter(event=event, endpoint=hook).count() == 2
    assert Event.objects.count() == 1


def test_replay_from_the_log_page(client, login, org, hook):
    event = emit(organization=org, type="key.created", data={})
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=2))
    login()
    replay = url_for("endpoint_replay", org, endpoint_id=hook.id)
    since = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(replay, {"since": since}, follow=True)
    assert "1 event queued" in response.content.decode()
    assert Delivery.objects.filter(event=event, endpoint=hook).count() == 2

    too_old = (timezone.now() - timedelta(days=15)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(replay, {"since": too_old})
    assert response.status_code == 200
    assert "since" in response.context["replay_form"].errors
    assert Delivery.objects.filter(event=event, endpoint=hook).count() == 2


# --- Isolation ---------------------------------------------------------------------------------
def test_a_member_of_another_org_gets_404_and_changes_nothing(client, login, org, other_org, hook):
    event = emit(organization=org, type="key.created", data={})
    before = (Delivery.objects.count(), AuditLogEntry.objects.count(), hook.secret_encrypted)
    login(Role.OWNER, organization=other_org)
    for name, with_endpoint in PAGES:
        assert client.get(page(name, with_endpoint, org, hook)).status_code == 404, name
    for name in ("endpoint_disable", "endpoint_rotate", "endpoint_test", "endpoint_delete"):
        assert client.post(url_for(name, org, endpoint_id=hook.id)).status_code == 404, name
    redeliver = url_for("event_redeliver", org, endpoint_id=hook.id, event_id=event.id)
    assert client.post(redeliver).status_code == 404
    hook.refresh_from_db()
    assert (Delivery.objects.count(), AuditLogEntry.objects.count(), hook.secret_encrypted) == (
        before
    )


def test_another_orgs_endpoint_and_event_are_not_found_through_my_org(
    client, login, org, other_org, hook
):
    foreign = make_hook(other_org, "https://globex.example.com/")
    foreign_event = emit(organization=other_org, type="key.created", data={})
    make_attempt(foreign, foreign_event)
    login()
    for name, with_endpoint in PAGES:
        if with_endpoint:
            assert client.get(page(name, True, org, foreign)).status_code == 404, name
    for name in ("endpoint_disable", "endpoint_rotate", "endpoint_test", "endpoint_delete"):
        assert client.post(url_for(name, org, endpoint_id=foreign.id)).status_code == 404
    # My endpoint, their event.
    redeliver = url_for("event_redeliver", org, endpoint_id=hook.id, event_id=foreign_event.id)
    assert client.post(redeliver).status_code == 404
    listed = client.get(url_for("endpoint_list", org)).content.decode()
    assert "globex.example.com" not in listed
    foreign.refresh_from_db()
    assert foreign.status == "enabled"
    assert Delivery.objects.filter(endpoint=foreign).count() == 1


# --- Operator admin ----------------------------------------------------------------------------
def test_the_operator_sees_endpoints_without_secrets_and_can_disable_them(client, org, hook):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    event = emit(organization=org, type="key.created", data={})
    make_attempt(hook, event)
    secret = decrypt(hook.secret_encrypted)
    for name in ("webhookendpoint", "event", "delivery", "deliveryattempt"):
        assert client.get(reverse(f"admin:webhooks_{name}_changelist")).status_code == 200
    change = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[hook.pk]))
    assert change.status_code == 200
    assert hook.secret_encrypted not in change.content.decode()
    assert secret not in change.content.decode()
    response = client.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "disable_endpoints", "_selected_action": [str(hook.pk)]},
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.status == "disabled"
    assert AuditLogEntry.objects.filter(action="webhook_endpoint.disabled").count() == 1
