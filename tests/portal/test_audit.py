"""The audit log: one row per state change, with who, from where and which request; never edited."""

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.test import RequestFactory

from common.request_id import reset_current_request_id, set_current_request_id
from common.secrets import hash_secret
from keys import services as key_services
from portal import services
from portal.audit import Actor, audit_record, client_ip
from portal.models import AuditLogEntry, Invitation, Organization
from portal.roles import Role
from tests.factories import (
    ApiKeyFactory,
    ApiTokenFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

REQUEST_ID = "req_audit_under_test"
IP = "203.0.113.7"
USER_AGENT = "audit-test/1.0"
SETUP = Actor.system("setup")


@pytest.fixture
def acting_user(org):
    return MembershipFactory(organization=org, role=Role.OWNER).user


@pytest.fixture
def actor(acting_user):
    return Actor(user=acting_user, ip_address=IP, user_agent=USER_AGENT, request_id=REQUEST_ID)


def all_audit_text() -> str:
    return json.dumps(list(AuditLogEntry.objects.values()), default=str)


@dataclass
class Change:
    """What one service call did: the row it should have written, and any secret it made."""

    action: str
    target: models.Model
    organization: Organization | None
    secret: str | None = None


def _organization_create(org, actor):
    organization = services.organization_create(
        actor=actor, name="Initech", owner=actor.user, slug="initech"
    )
    return Change("organization.created", organization, organization)


def _project_create(org, actor):
    project = services.project_create(actor=actor, organization=org, name="Checkout")
    return Change("project.created", project, org)


def _key_create(org, actor):
    key, raw = key_services.key_create(
        actor=actor, project=ProjectFactory(organization=org), name="ci", environment="live"
    )
    return Change("key.created", key, org, raw)


def _key_rotate(org, actor):
    key, _old_raw = key_services.key_create(
        actor=SETUP, project=ProjectFactory(organization=org), name="ci", environment="test"
    )
    _new, raw = key_services.key_rotate(actor=actor, key=key)
    return Change("key.rotated", key, org, raw)


def _key_revoke(org, actor):
    key = ApiKeyFactory(project=ProjectFactory(organization=org))
    key_services.key_revoke(actor=actor, key=key)
    return Change("key.revoked", key, org, key.raw_key)


def _token_create(org, actor):
    token, raw = services.token_create(
        actor=actor, kind="org", name="ci", scopes=["all"], organization=org
    )
    return Change("token.created", token, org, raw)


def _operator_token_create(org, actor):
    token, raw = services.token_create(actor=actor, kind="operator", name="gateway", scopes=["all"])
    return Change("token.created", token, None, raw)


def _token_revoke(org, actor):
    token = ApiTokenFactory(organization=org)
    services.token_revoke(actor=actor, token=token)
    return Change("token.revoked", token, org, token.raw_token)


def _invitation_create(org, actor):
    invitation, raw = services.invitation_create(
        actor=actor,
        acting_role=Role.OWNER,
        organization=org,
        email="new@example.com",
        role="viewer",
    )
    return Change("invitation.created", invitation, org, raw)


def _invitation_accept(org, actor):
    _invitation, raw = services.invitation_create(
        actor=SETUP,
        acting_role=Role.OWNER,
        organization=org,
        email="new@example.com",
        role="viewer",
    )
    invitee = UserFactory(email="new@example.com")
    invitee_actor = Actor(user=invitee, ip_address=IP, user_agent=USER_AGENT, request_id=REQUEST_ID)
    membership = services.invitation_accept(actor=invitee_actor, raw_token=raw, user=invitee)
    return Change("invitation.accepted", membership, org, raw)


def _invitation_revoke(org, actor):
    invitation, raw = services.invitation_create(
        actor=SETUP,
        acting_role=Role.OWNER,
        organization=org,
        email="new@example.com",
        role="viewer",
    )
    services.invitation_revoke(actor=actor, invitation=invitation)
    return Change("invitation.revoked", invitation, org, raw)


def _membership_change_role(org, actor):
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    member = services.membership_change_role(
        actor=actor, acting_role=Role.OWNER, membership=member, role=Role.ADMIN
    )
    return Change("membership.role_changed", member, org)


def _membership_remove(org, actor):
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    services.membership_remove(actor=actor, acting_role=Role.OWNER, membership=member)
    return Change("membership.removed", member, org)


STATE_CHANGES: dict[str, Callable] = {
    "organization create": _organization_create,
    "project create": _project_create,
    "key create": _key_create,
    "key rotate": _key_rotate,
    "key revoke": _key_revoke,
    "org token create": _token_create,
    "operator token create": _operator_token_create,
    "token revoke": _token_revoke,
    "invitation create": _invitation_create,
    "invitation accept": _invitation_accept,
    "invitation revoke": _invitation_revoke,
    "membership role change": _membership_change_role,
    "membership remove": _membership_remove,
}


@pytest.mark.parametrize("change", STATE_CHANGES.values(), ids=STATE_CHANGES.keys())
def test_every_state_change_leaves_exactly_one_complete_audit_row(org, actor, change):
    done = change(org, actor)
    rows = list(AuditLogEntry.objects.filter(request_id=REQUEST_ID))
    assert len(rows) == 1
    row = rows[0]
    assert row.action == done.action
    assert row.organization_id == (done.organization.pk if done.organization else None)
    assert row.target_type == done.target._meta.label
    assert row.target_id == str(done.target.pk)
    assert row.target_label
    assert row.actor_type == AuditLogEntry.ActorType.USER
    assert row.actor_user_id is not None
    assert row.actor_label == row.actor_user.email
    assert row.ip_address == IP
    assert row.user_agent == USER_AGENT
    assert row.created_at is not None


@pytest.mark.parametrize(
    "change",
    [_key_create, _key_rotate, _key_revoke, _token_create, _token_revoke, _invitation_create],
    ids=["key create", "key rotate", "key revoke", "token create", "token revoke", "invitation"],
)
def test_no_audit_row_contains_a_secret_or_its_hash(org, actor, change):
    done = change(org, actor)
    text = all_audit_text()
    assert done.secret not in text
    assert hash_secret(done.secret) not in text


def test_secret_named_changes_are_dropped_whatever_the_caller_passes(org, actor):
    row = audit_record(
        actor=actor,
        action="test.secret",
        organization=org,
        changes={
            "name": "ok",
            "key": "tg_live_x",
            "Token_Hash": "abc",
            "password": "p",
            "raw": "r",
        },
    )
    assert row.changes == {"name": "ok"}


def test_a_refused_change_leaves_no_audit_row(org, actor):
    services.project_create(actor=actor, organization=org, name="Checkout")
    with pytest.raises(Exception):  # noqa: B017 - the Conflict itself is tested in test_services
        services.project_create(actor=actor, organization=org, name="Checkout")
    assert AuditLogEntry.objects.filter(action="project.created").count() == 1


def test_system_actor_is_labelled_and_has_no_user(org):
    row = audit_record(actor=Actor.system("billing-run"), action="x.y", organization=org)
    assert (row.actor_type, row.actor_label, row.actor_user_id) == (
        "system",
        "system:billing-run",
        None,
    )


def test_actor_takes_the_current_request_id_by_default(org):
    token = set_current_request_id("req_from_context")
    try:
        actor = Actor.system("tests")
    finally:
        reset_current_request_id(token)
    assert (
        audit_record(actor=actor, action="x.y", organization=org).request_id == "req_from_context"
    )


# --- API calls ---------------------------------------------------------------------------
def _api_changes(api, org):
    project = ProjectFactory(organization=org)
    key = ApiKeyFactory(project=project)
    return [
        ("project.created", lambda: api.post("/api/v1/projects", {"name": "New"}, format="json")),
        (
            "key.created",
            lambda: api.post(
                "/api/v1/keys",
                {"project": str(project.id), "name": "ci", "environment": "test"},
                format="json",
            ),
        ),
        ("key.rotated", lambda: api.post(f"/api/v1/keys/{key.id}/rotate")),
        ("key.revoked", lambda: api.post(f"/api/v1/keys/{key.id}/revoke")),
    ]


def test_api_changes_are_audited_with_the_response_request_id_and_the_token(api, org, org_token):
    for action, request in _api_changes(api, org):
        before = AuditLogEntry.objects.count()
        response = request()
        assert response.status_code in (200, 201), response.content
        assert AuditLogEntry.objects.count() == before + 1
        row = AuditLogEntry.objects.get(request_id=response["X-Request-Id"])
        assert row.action == action
        assert row.organization == org
        assert row.actor_type == AuditLogEntry.ActorType.TOKEN
        assert row.actor_token_id == org_token.id
        assert org_token.name in row.actor_label
        assert row.ip_address == "127.0.0.1"


def test_api_audit_row_keeps_the_user_agent_and_a_caller_request_id(api, org):
    response = api.post(
        "/api/v1/projects",
        {"name": "New"},
        format="json",
        HTTP_USER_AGENT="tollgate-sdk/2.1",
        HTTP_X_REQUEST_ID="lb-0123456789",
    )
    assert response["X-Request-Id"] == "lb-0123456789"
    row = AuditLogEntry.objects.get(action="project.created")
    assert (row.user_agent, row.request_id) == ("tollgate-sdk/2.1", "lb-0123456789")


def test_api_key_secrets_never_reach_the_audit_log(api, org):
    project = ProjectFactory(organization=org)
    created = api.post(
        "/api/v1/keys",
        {"project": str(project.id), "name": "ci", "environment": "live"},
        format="json",
    ).json()
    rotated = api.post(f"/api/v1/keys/{created['id']}/rotate").json()
    text = all_audit_text()
    for secret in (created["key"], rotated["key"]):
        assert secret not in text
        assert hash_secret(secret) not in text


def test_audit_log_api_shows_the_rows_with_actor_and_origin(api, org, org_token):
    response = api.post("/api/v1/projects", {"name": "New"}, format="json")
    entry = api.get("/api/v1/audit-log").json()["results"][0]
    assert entry["action"] == "project.created"
    assert entry["actor_type"] == "token"
    assert entry["actor"] == f"token:{org_token.name} ({org_token.prefix})"
    assert entry["target_id"] == response.json()["id"]
    assert entry["request_id"] == response["X-Request-Id"]
    assert entry["ip_address"] == "127.0.0.1"


# --- Append-only -------------------------------------------------------------------------
@pytest.fixture
def entry(org, actor):
    return audit_record(actor=actor, action="project.created", organization=org)


def test_audit_row_cannot_be_saved_again(entry):
    entry.action = "project.deleted"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    entry.refresh_from_db()
    assert entry.action == "project.created"


def test_audit_row_cannot_be_deleted_through_the_model(entry):
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
    assert AuditLogEntry.objects.filter(pk=entry.pk).exists()


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE portal_auditlogentry SET action = 'tampered' WHERE id = %s",
        "DELETE FROM portal_auditlogentry WHERE id = %s",
    ],
    ids=["update", "delete"],
)
def test_database_refuses_raw_sql_update_and_delete(postgresql, entry, statement):
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [entry.pk])
    entry.refresh_from_db()
    assert entry.action == "project.created"


def test_database_refuses_queryset_update_and_delete(postgresql, entry):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditLogEntry.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditLogEntry.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.action == "project.created"


def test_audit_rows_outlive_what_they_describe(org, actor):
    project = services.project_create(actor=actor, organization=org, name="Doomed")
    project_id = str(project.pk)
    project.delete()
    row = AuditLogEntry.objects.get(action="project.created")
    assert row.target_id == project_id
    assert row.target_label == "Doomed"


# --- Where a request came from -----------------------------------------------------------
@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "", "10.0.0.9"),
        (0, "198.51.100.1", "10.0.0.9"),
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (2, "198.51.100.1", "10.0.0.9"),
    ],
    ids=[
        "direct",
        "spoofed header without a proxy",
        "one proxy",
        "client-supplied hop ignored",
        "two proxies",
        "fewer hops than proxies",
    ],
)
def test_client_ip_trusts_only_the_configured_proxies(settings, proxies, forwarded, expected):
    settings.NUM_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_actor_from_a_signed_in_request_is_the_user(db):
    user = UserFactory()
    request = RequestFactory().get("/", HTTP_USER_AGENT="x" * 600, REMOTE_ADDR="192.0.2.1")
    request.user = user
    request.request_id = "req_page"
    actor = Actor.from_request(request)
    assert (actor.user, actor.token, actor.actor_type, actor.label) == (
        user,
        None,
        "user",
        user.email,
    )
    assert (actor.ip_address, actor.request_id, len(actor.user_agent)) == (
        "192.0.2.1",
        "req_page",
        500,
    )


def test_invitation_rows_do_not_store_the_link_secret(org, actor):
    _invitation, raw = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="x@example.com", role="viewer"
    )
    stored = json.dumps(list(Invitation.objects.values()), default=str)
    assert raw not in stored
    assert hash_secret(raw) in stored
