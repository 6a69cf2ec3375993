"""Portal pages: who may see what, tenant isolation, and the forms behind each page."""

import csv
import io
import re
from datetime import timedelta
from html import unescape
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from common.secrets import hash_secret
from keys.models import ApiKey
from portal.audit import Actor
from portal.models import ApiToken, AuditLogEntry, Invitation, Membership, Organization, Project
from portal.roles import Role
from portal.services import project_create
from tests.factories import (
    ApiKeyFactory,
    ApiTokenFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
)

SECRET_PATTERN = re.compile(r"tg_(?:test|live|org)_[0-9A-Za-z]{38,}")
EVERYONE = frozenset(Role)
DEVELOPERS_AND_ABOVE = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
ADMINS = frozenset({Role.OWNER, Role.ADMIN})
# Billing members see the org and its money, not its projects and keys.
PROJECT_READERS = EVERYONE - {Role.BILLING}

# Every GET page of an organization and the roles that may open it (the rest get 403).
ORG_PAGES = [
    ("portal:dashboard", None, EVERYONE),
    ("portal:project_list", None, PROJECT_READERS),
    ("portal:project_create", None, DEVELOPERS_AND_ABOVE),
    ("portal:project_detail", "project_id", PROJECT_READERS),
    ("portal:project_key_create", "project_id", DEVELOPERS_AND_ABOVE),
    ("portal:key_list", None, PROJECT_READERS),
    ("portal:key_rotate", "key_id", DEVELOPERS_AND_ABOVE),
    ("portal:key_revoke", "key_id", DEVELOPERS_AND_ABOVE),
    ("portal:member_list", None, ADMINS),
    ("portal:token_list", None, ADMINS),
    ("portal:audit_log", None, ADMINS),
    ("portal:audit_csv", None, ADMINS),
]


@pytest.fixture
def login(client, org):
    """Logs the test client in as a new member of `org` (or `organization`) with `role`."""

    def log_in(role: str = Role.OWNER, organization: Organization | None = None) -> Membership:
        membership = MembershipFactory(organization=organization or org, role=role)
        client.force_login(membership.user)
        return membership

    return log_in


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org, name="Storefront")


@pytest.fixture
def key(project):
    return ApiKeyFactory(project=project, name="checkout")


def org_url(name: str, org: Organization, **kwargs) -> str:
    return reverse(name, kwargs={"slug": org.slug, **kwargs})


def page_url(name: str, object_argument: str | None, org, project, key) -> str:
    objects = {"project_id": project.id, "key_id": key.id}
    extra = {object_argument: objects[object_argument]} if object_argument else {}
    return org_url(name, org, **extra)


def errors_next_to(response, field: str) -> str:
    """The error text rendered under `field` in the page (empty when there is none)."""
    html = response.content.decode()
    match = re.search(rf'<ul class="errors" id="id_{field}_errors">(.*?)</ul>', html, re.S)
    return unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def secrets_in(response) -> list[str]:
    return SECRET_PATTERN.findall(response.content.decode())


# --- Roles and anonymous visitors --------------------------------------------------------
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("name", "object_argument", "allowed"), ORG_PAGES)
def test_each_page_opens_for_allowed_roles_and_is_forbidden_to_others(
    client, login, org, project, key, role, name, object_argument, allowed
):
    login(role)
    response = client.get(page_url(name, object_argument, org, project, key))
    if role in allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert b"Not allowed" in response.content


@pytest.mark.parametrize(("name", "object_argument", "allowed"), ORG_PAGES)
def test_anonymous_visitors_are_sent_to_login(
    client, org, project, key, name, object_argument, allowed
):
    url = page_url(name, object_argument, org, project, key)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={url}"


def test_navigation_shows_only_the_sections_the_role_may_open(client, login, org):
    login(Role.VIEWER)
    viewer_page = client.get(org_url("portal:dashboard", org)).content.decode()
    assert org_url("portal:key_list", org) in viewer_page
    assert org_url("portal:member_list", org) not in viewer_page
    assert org_url("portal:audit_log", org) not in viewer_page
    assert org_url("portal:project_create", org) not in viewer_page

    login(Role.ADMIN)
    admin_page = client.get(org_url("portal:dashboard", org)).content.decode()
    for name in ("member_list", "token_list", "audit_log", "project_create"):
        assert org_url(f"portal:{name}", org) in admin_page


def test_org_switcher_lists_every_org_of_the_user(client, login, org, other_org):
    membership = login(Role.DEVELOPER)
    MembershipFactory(organization=other_org, user=membership.user, role=Role.VIEWER)
    page = client.get(org_url("portal:dashboard", org)).content.decode()
    assert org_url("portal:dashboard", other_org) in page
    assert "Globex" in page


# --- Home --------------------------------------------------------------------------------
def test_home_shows_the_landing_page_to_visitors(client, db):
    response = client.get(reverse("portal:home"))
    assert response.status_code == 200
    assert reverse("account_signup").encode() in response.content
    assert reverse("account_login").encode() in response.content


def test_home_sends_a_user_without_an_org_to_create_one(client, db):
    client.force_login(UserFactory())
    response = client.get(reverse("portal:home"))
    assert response["Location"] == reverse("portal:organization_create")


def test_home_sends_a_member_to_their_first_organization(client, login, org, other_org):
    membership = login(Role.VIEWER)
    MembershipFactory(organization=other_org, user=membership.user)
    response = client.get(reverse("portal:home"))
    assert response["Location"] == org_url("portal:dashboard", org)


# --- Organizations -----------------------------------------------------------------------
def test_creating_an_organization_makes_the_user_its_owner_and_audits_it(client, db):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("portal:organization_create"), {"name": "Initech", "slug": ""})
    organization = Organization.objects.get(slug="initech")
    assert response["Location"] == org_url("portal:dashboard", organization)
    assert Membership.objects.get(organization=organization).user == user
    assert Membership.objects.get(organization=organization).role == Role.OWNER
    entry = AuditLogEntry.objects.get(organization=organization)
    assert (entry.action, entry.actor_user) == ("organization.created", user)


def test_a_taken_org_slug_is_reported_next_to_the_slug_field(client, org):
    client.force_login(UserFactory())
    response = client.post(
        reverse("portal:organization_create"), {"name": "Acme 2", "slug": "acme"}
    )
    assert response.status_code == 200
    assert "is taken" in errors_next_to(response, "slug")
    assert Organization.objects.count() == 1


def test_an_invalid_slug_and_an_empty_name_are_reported_next_to_their_fields(client, db):
    client.force_login(UserFactory())
    response = client.post(reverse("portal:organization_create"), {"name": "", "slug": "-x-"})
    assert errors_next_to(response, "name")
    assert not Organization.objects.exists()

    response = client.post(reverse("portal:organization_create"), {"name": "X", "slug": "Bad Slug"})
    assert "lowercase letters" in errors_next_to(response, "slug")
    assert not Organization.objects.exists()


def test_creating_an_organization_needs_a_login(client, db):
    response = client.post(reverse("portal:organization_create"), {"name": "Initech"})
    assert response.status_code == 302
    assert not Organization.objects.exists()


# --- Projects ----------------------------------------------------------------------------
def test_a_developer_creates_a_project_and_it_is_audited(client, login, org):
    membership = login(Role.DEVELOPER)
    response = client.post(
        org_url("portal:project_create", org), {"name": "Mobile app", "description": "iOS"}
    )
    project = Project.objects.get(organization=org, name="Mobile app")
    assert response["Location"] == org_url("portal:project_detail", org, project_id=project.id)
    entry = AuditLogEntry.objects.get(organization=org, action="project.created")
    assert entry.actor_user == membership.user
    assert entry.target_id == str(project.id)


def test_a_duplicate_project_name_is_reported_next_to_the_name(client, login, org, project):
    login(Role.DEVELOPER)
    response = client.post(org_url("portal:project_create", org), {"name": "Storefront"})
    assert response.status_code == 200
    assert "already exists" in errors_next_to(response, "name")
    assert Project.objects.filter(organization=org).count() == 1
    assert not AuditLogEntry.objects.filter(action="project.created").exists()


def test_project_detail_splits_keys_by_environment(client, login, org, project):
    login(Role.VIEWER)
    ApiKeyFactory(project=project, name="sandbox-key", environment="test")
    ApiKeyFactory(project=project, name="production-key", environment="live")
    page = client.get(org_url("portal:project_detail", org, project_id=project.id)).content
    test_section, live_section = page.decode().split('id="live-keys-heading"')
    assert "sandbox-key" in test_section and "production-key" not in test_section
    assert "production-key" in live_section and "sandbox-key" not in live_section


# --- Keys --------------------------------------------------------------------------------
def test_a_new_key_is_shown_exactly_once_and_never_again(client, login, org, project):
    login(Role.DEVELOPER)
    response = client.post(
        org_url("portal:project_key_create", org, project_id=project.id),
        {
            "name": "checkout-service",
            "environment": "test",
            "scopes": "read, write bulk",
            "expires_at": "",
            "allowed_cidrs": "203.0.113.0/24\n\n2001:db8::/32\n",
        },
    )
    assert response.status_code == 200
    [secret] = secrets_in(response)
    assert response.content.decode().count(secret) == 1
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(organization=org)
    assert key.key_hash == hash_secret(secret)
    assert secret.startswith("tg_test_")
    assert key.scopes == ["bulk", "read", "write"]
    assert key.allowed_cidrs == ["2001:db8::/32", "203.0.113.0/24"]
    assert AuditLogEntry.objects.get(organization=org, action="key.created").target_id == str(
        key.id
    )
    assert secret not in str(dict(client.session))

    for url in (
        org_url("portal:project_detail", org, project_id=project.id),
        org_url("portal:key_list", org),
        org_url("portal:dashboard", org),
    ):
        later = client.get(url).content.decode()
        assert secret not in later
    assert key.prefix in client.get(org_url("portal:key_list", org)).content.decode()


def test_a_key_with_an_expiry_gets_it_in_utc(client, login, org, project):
    login(Role.DEVELOPER)
    expiry = (timezone.now() + timedelta(days=30)).replace(second=0, microsecond=0)
    client.post(
        org_url("portal:project_key_create", org, project_id=project.id),
        {
            "name": "temporary",
            "environment": "live",
            "scopes": "read",
            "expires_at": expiry.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    key = ApiKey.objects.get(organization=org)
    assert (key.environment, key.expires_at) == ("live", expiry)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("allowed_cidrs", "10.0.0.0/8\n300.1.1.1/33", "'300.1.1.1/33' is not an IPv4 or IPv6"),
        ("name", "   ", "required"),
        ("scopes", "read Write!", "'Write!' is not a scope"),
        ("expires_at", "2001-01-01T00:00", "must be in the future"),
        ("environment", "staging", "Select a valid choice"),
    ],
)
def test_bad_key_input_is_shown_next_to_the_field_and_creates_nothing(
    client, login, org, project, field, value, message
):
    login(Role.DEVELOPER)
    data = {"name": "svc", "environment": "test", "scopes": "read", field: value}
    response = client.post(org_url("portal:project_key_create", org, project_id=project.id), data)
    assert response.status_code == 200
    assert message in errors_next_to(response, field)
    assert not secrets_in(response)
    assert not ApiKey.objects.exists()
    assert not AuditLogEntry.objects.filter(action="key.created").exists()


def test_a_viewer_cannot_create_a_key(client, login, org, project):
    login(Role.VIEWER)
    response = client.post(
        org_url("portal:project_key_create", org, project_id=project.id),
        {"name": "sneaky", "environment": "live", "scopes": "read"},
    )
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_key_for_the_grace(
    client, login, org, key
):
    login(Role.DEVELOPER)
    form = client.get(org_url("portal:key_rotate", org, key_id=key.id))
    assert b"24 hours" in form.content
    response = client.post(
        org_url("portal:key_rotate", org, key_id=key.id), {"grace_period_seconds": "3600"}
    )
    [secret] = secrets_in(response)
    assert "no-store" in response["Cache-Control"]
    key.refresh_from_db()
    assert key.replaced_by.key_hash == hash_secret(secret)
    assert key.status == ApiKey.Status.ROTATING
    assert timedelta(minutes=59) < key.grace_ends_at - timezone.now() <= timedelta(hours=1)
    assert AuditLogEntry.objects.filter(organization=org, action="key.rotated").count() == 1
    assert secret not in client.get(org_url("portal:key_list", org)).content.decode()


def test_rotating_without_a_grace_period_stops_the_old_key_at_once(client, login, org, key):
    login(Role.DEVELOPER)
    client.post(org_url("portal:key_rotate", org, key_id=key.id), {"grace_period_seconds": "0"})
    key.refresh_from_db()
    assert key.status == ApiKey.Status.EXPIRED


def test_a_grace_period_outside_the_choices_is_refused(client, login, org, key):
    login(Role.DEVELOPER)
    response = client.post(
        org_url("portal:key_rotate", org, key_id=key.id), {"grace_period_seconds": "99999999"}
    )
    assert errors_next_to(response, "grace_period_seconds")
    assert ApiKey.objects.count() == 1


def test_a_revoked_key_cannot_be_rotated(client, login, org, key):
    login(Role.DEVELOPER)
    key.revoked_at = timezone.now()
    key.save()
    response = client.post(
        org_url("portal:key_rotate", org, key_id=key.id),
        {"grace_period_seconds": "3600"},
    )
    assert any("Only an active key" in message for message in page_messages(response))
    assert not secrets_in(response)
    assert ApiKey.objects.count() == 1


def test_revoking_asks_first_and_then_revokes_on_post(client, login, org, key):
    login(Role.DEVELOPER)
    confirmation = client.get(org_url("portal:key_revoke", org, key_id=key.id))
    assert b"Revoke key" in confirmation.content
    key.refresh_from_db()
    assert key.revoked_at is None

    response = client.post(org_url("portal:key_revoke", org, key_id=key.id))
    assert response["Location"] == org_url("portal:project_detail", org, project_id=key.project_id)
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED
    assert AuditLogEntry.objects.filter(organization=org, action="key.revoked").count() == 1


def test_key_list_shows_every_key_of_the_org_with_its_status(client, login, org, project):
    login(Role.VIEWER)
    ApiKeyFactory(project=project, name="still-good")
    ApiKeyFactory(project=project, name="gone", revoked_at=timezone.now())
    ApiKeyFactory(project=ProjectFactory(), name="someone-elses")
    page = client.get(org_url("portal:key_list", org)).content.decode()
    assert "still-good" in page and "gone" in page
    assert "someone-elses" not in page
    assert "badge-revoked" in page and "badge-active" in page


def test_key_list_filters_by_environment_and_project(client, login, org, project):
    login(Role.VIEWER)
    ApiKeyFactory(project=project, name="sandbox-key", environment="test")
    ApiKeyFactory(project=project, name="production-key", environment="live")
    ApiKeyFactory(project=ProjectFactory(organization=org), name="other-project-key")

    live = client.get(org_url("portal:key_list", org), {"environment": "live"}).content.decode()
    assert "production-key" in live and "sandbox-key" not in live

    url = org_url("portal:key_list", org)
    by_project = client.get(url, {"project": str(project.id)}).content.decode()
    assert "sandbox-key" in by_project and "other-project-key" not in by_project


# --- Members and invitations -------------------------------------------------------------
def invite(client, org, email: str, role: str, capture) -> str:
    """Invites through the page and returns the path of the link in the e-mail."""
    with capture(execute=True):
        response = client.post(org_url("portal:member_invite", org), {"email": email, "role": role})
    assert response.status_code == 302, errors_next_to(response, "email")
    [message] = [m for m in mail.outbox if email in m.to]
    [link] = re.findall(r"https?://\S+/invitations/\S+/", message.body)
    return urlsplit(link).path


def test_an_invited_user_accepts_and_joins_with_the_role(
    client, login, org, django_capture_on_commit_callbacks
):
    login(Role.ADMIN)
    path = invite(
        client, org, "new.dev@example.com", Role.DEVELOPER, django_capture_on_commit_callbacks
    )
    members_page = client.get(org_url("portal:member_list", org)).content.decode()
    assert "new.dev@example.com" in members_page

    invitee = UserFactory(email="new.dev@example.com")
    client.force_login(invitee)
    landing = client.get(path)
    assert landing.status_code == 200
    assert b"Acme" in landing.content and b"Accept and join" in landing.content

    response = client.post(path)
    assert response["Location"] == org_url("portal:dashboard", org)
    assert Membership.objects.get(organization=org, user=invitee).role == Role.DEVELOPER
    assert AuditLogEntry.objects.filter(organization=org, action="invitation.accepted").exists()
    assert client.get(path).status_code == 404


def test_an_invitation_cannot_be_accepted_by_another_address(
    client, login, org, django_capture_on_commit_callbacks
):
    login(Role.OWNER)
    path = invite(client, org, "right@example.com", Role.VIEWER, django_capture_on_commit_callbacks)
    intruder = UserFactory(email="wrong@example.com")
    client.force_login(intruder)

    landing = client.get(path)
    assert b"Accept and join" not in landing.content
    assert b"sent to right@example.com" in landing.content

    response = client.post(path)
    assert any("right@example.com" in message for message in page_messages(response))
    assert not Membership.objects.filter(user=intruder).exists()
    assert Invitation.objects.get(email="right@example.com").status == Invitation.Status.PENDING


def test_expired_revoked_and_unknown_invitations_are_not_found(
    client, login, org, django_capture_on_commit_callbacks
):
    login(Role.OWNER)
    expired = invite(
        client, org, "late@example.com", Role.VIEWER, django_capture_on_commit_callbacks
    )
    Invitation.objects.filter(email="late@example.com").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked = invite(
        client, org, "nope@example.com", Role.VIEWER, django_capture_on_commit_callbacks
    )
    invitation = Invitation.objects.get(email="nope@example.com")
    client.post(org_url("portal:member_invitation_revoke", org, invitation_id=invitation.id))

    for email, path in [("late@example.com", expired), ("nope@example.com", revoked)]:
        client.force_login(UserFactory(email=email))
        assert client.get(path).status_code == 404
        assert client.post(path).status_code == 404
    assert client.get("/invitations/tg_inv_madeup/").status_code == 404
    assert not Membership.objects.filter(user__email__in=["late@example.com", "nope@example.com"])


def test_accepting_an_invitation_needs_a_login(
    client, login, org, django_capture_on_commit_callbacks
):
    login(Role.OWNER)
    path = invite(
        client, org, "someone@example.com", Role.VIEWER, django_capture_on_commit_callbacks
    )
    client.logout()
    response = client.get(path)
    assert response["Location"].startswith(reverse("account_login"))


def test_an_admin_cannot_invite_an_owner(client, login, org):
    login(Role.ADMIN)
    response = client.post(
        org_url("portal:member_invite", org), {"email": "boss@example.com", "role": "owner"}
    )
    assert errors_next_to(response, "role")
    assert not Invitation.objects.exists()


def test_inviting_a_member_again_is_reported_next_to_the_email(client, login, org):
    login(Role.OWNER)
    colleague = MembershipFactory(organization=org, role=Role.VIEWER).user
    response = client.post(
        org_url("portal:member_invite", org), {"email": colleague.email, "role": "developer"}
    )
    assert "already a member" in errors_next_to(response, "email")
    assert not Invitation.objects.exists()


def test_an_owner_changes_a_role_and_removes_a_member(client, login, org):
    login(Role.OWNER)
    colleague = MembershipFactory(organization=org, role=Role.DEVELOPER)
    client.post(org_url("portal:member_role", org, membership_id=colleague.id), {"role": "viewer"})
    colleague.refresh_from_db()
    assert colleague.role == Role.VIEWER
    response = client.post(org_url("portal:member_remove", org, membership_id=colleague.id))
    assert response["Location"] == org_url("portal:member_list", org)
    assert not Membership.objects.filter(pk=colleague.pk).exists()
    actions = set(AuditLogEntry.objects.filter(organization=org).values_list("action", flat=True))
    assert {"membership.role_changed", "membership.removed"} <= actions


def test_the_last_owner_cannot_step_down(client, login, org):
    me = login(Role.OWNER)
    response = client.post(
        org_url("portal:member_role", org, membership_id=me.id), {"role": "viewer"}, follow=True
    )
    assert any("at least one owner" in message for message in page_messages(response))
    me.refresh_from_db()
    assert me.role == Role.OWNER


def test_an_admin_cannot_demote_an_owner(client, login, org):
    owner = MembershipFactory(organization=org, role=Role.OWNER)
    login(Role.ADMIN)
    response = client.post(
        org_url("portal:member_role", org, membership_id=owner.id),
        {"role": "viewer"},
        follow=True,
    )
    assert any("cannot grant or change" in message for message in page_messages(response))
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_a_developer_cannot_manage_members(client, login, org):
    login(Role.DEVELOPER)
    other = MembershipFactory(organization=org, role=Role.VIEWER)
    assert (
        client.post(org_url("portal:member_remove", org, membership_id=other.id)).status_code == 403
    )
    assert Membership.objects.filter(pk=other.pk).exists()


# --- Management API tokens ---------------------------------------------------------------
def test_a_new_token_is_shown_once_and_can_be_revoked(client, login, org):
    login(Role.ADMIN)
    response = client.post(
        org_url("portal:token_list", org),
        {"name": "ci", "scopes": ["keys:read", "keys:write"], "expires_at": ""},
    )
    [secret] = secrets_in(response)
    assert response.content.decode().count(secret) == 1
    token = ApiToken.objects.get(organization=org)
    assert token.token_hash == hash_secret(secret)
    assert token.scopes == ["keys:read", "keys:write"]

    listing = client.get(org_url("portal:token_list", org)).content.decode()
    assert secret not in listing and token.prefix in listing

    client.post(org_url("portal:token_revoke", org, token_id=token.id))
    token.refresh_from_db()
    assert token.revoked_at is not None
    actions = set(AuditLogEntry.objects.filter(organization=org).values_list("action", flat=True))
    assert {"token.created", "token.revoked"} <= actions


def test_a_token_needs_a_name_and_a_known_scope(client, login, org):
    login(Role.ADMIN)
    response = client.post(
        org_url("portal:token_list", org), {"name": "", "scopes": ["admin"], "expires_at": ""}
    )
    assert errors_next_to(response, "name")
    assert "Select a valid choice" in errors_next_to(response, "scopes")
    assert not ApiToken.objects.exists()


# --- Audit log ---------------------------------------------------------------------------
def test_the_audit_log_filters_and_exports_csv(client, login, org, other_org):
    login(Role.OWNER)
    client.post(org_url("portal:project_create", org), {"name": "First"})
    client.post(org_url("portal:project_create", org), {"name": "Second"})
    client.post(org_url("portal:token_list", org), {"name": "ci", "scopes": ["keys:read"]})
    project_create(actor=Actor.system("test"), organization=other_org, name="Elsewhere")

    page = client.get(org_url("portal:audit_log", org), {"action": "project."}).content.decode()
    assert page.count("project.created") == 2
    assert "token.created" not in page and "Elsewhere" not in page
    assert f"{org_url('portal:audit_csv', org)}?action=project." in unescape(page)

    export = client.get(org_url("portal:audit_csv", org), {"action": "project."})
    assert export["Content-Type"] == "text/csv"
    assert export.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert sorted(row["target_label"] for row in rows) == ["First", "Second"]
    assert {row["action"] for row in rows} == {"project.created"}


def test_bad_audit_filters_are_shown_and_refused_for_csv(client, login, org):
    login(Role.ADMIN)
    page = client.get(org_url("portal:audit_log", org), {"since": "yesterday"})
    assert errors_next_to(page, "since")
    assert client.get(org_url("portal:audit_csv", org), {"since": "yesterday"}).status_code == 400


# --- Tenant isolation --------------------------------------------------------------------
def test_a_member_of_another_org_gets_404_everywhere_and_changes_nothing(
    client, login, org, other_org, project, key
):
    colleague = MembershipFactory(organization=org, role=Role.DEVELOPER)
    token = ApiTokenFactory(organization=org)
    invitation = Invitation.objects.create(
        organization=org,
        email="x@example.com",
        token_hash=hash_secret("tg_inv_x"),
        expires_at=timezone.now() + timedelta(days=1),
    )
    before = (
        ApiKey.objects.count(),
        Project.objects.count(),
        Membership.objects.count(),
        AuditLogEntry.objects.count(),
    )
    login(Role.OWNER, organization=other_org)

    for name, object_argument, _allowed in ORG_PAGES:
        url = page_url(name, object_argument, org, project, key)
        assert client.get(url).status_code == 404, url
    posts = [
        (org_url("portal:project_create", org), {"name": "Injected"}),
        (
            org_url("portal:project_key_create", org, project_id=project.id),
            {"name": "x", "environment": "live", "scopes": "read"},
        ),
        (org_url("portal:key_rotate", org, key_id=key.id), {"grace_period_seconds": "0"}),
        (org_url("portal:key_revoke", org, key_id=key.id), {}),
        (org_url("portal:member_invite", org), {"email": "me@example.com", "role": "owner"}),
        (org_url("portal:member_role", org, membership_id=colleague.id), {"role": "viewer"}),
        (org_url("portal:member_remove", org, membership_id=colleague.id), {}),
        (org_url("portal:member_invitation_revoke", org, invitation_id=invitation.id), {}),
        (org_url("portal:token_list", org), {"name": "x", "scopes": ["keys:write"]}),
        (org_url("portal:token_revoke", org, token_id=token.id), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url

    key.refresh_from_db()
    token.refresh_from_db()
    colleague.refresh_from_db()
    invitation.refresh_from_db()
    assert key.status == ApiKey.Status.ACTIVE
    assert token.revoked_at is None
    assert colleague.role == Role.DEVELOPER
    assert invitation.status == Invitation.Status.PENDING
    assert (
        ApiKey.objects.count(),
        Project.objects.count(),
        Membership.objects.count() - 1,  # the outsider's own membership, made by `login`
        AuditLogEntry.objects.count(),
    ) == before


def test_another_orgs_objects_are_not_found_through_my_own_org(
    client, login, org, other_org, project, key
):
    """Swapping only the object id (not the slug) must not reach the other org's rows."""
    foreign_project = ProjectFactory(organization=other_org)
    foreign_key = ApiKeyFactory(project=foreign_project)
    foreign_member = MembershipFactory(organization=other_org, role=Role.DEVELOPER)
    foreign_token = ApiTokenFactory(organization=other_org)
    login(Role.OWNER)

    gets = [
        org_url("portal:project_detail", org, project_id=foreign_project.id),
        org_url("portal:project_key_create", org, project_id=foreign_project.id),
        org_url("portal:key_rotate", org, key_id=foreign_key.id),
        org_url("portal:key_revoke", org, key_id=foreign_key.id),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    posts = [
        org_url("portal:key_revoke", org, key_id=foreign_key.id),
        org_url("portal:key_rotate", org, key_id=foreign_key.id),
        org_url("portal:member_remove", org, membership_id=foreign_member.id),
        org_url("portal:token_revoke", org, token_id=foreign_token.id),
    ]
    for url in posts:
        assert client.post(url, {"grace_period_seconds": "0"}).status_code == 404, url

    foreign_key.refresh_from_db()
    foreign_token.refresh_from_db()
    assert foreign_key.status == ApiKey.Status.ACTIVE
    assert foreign_token.revoked_at is None
    assert Membership.objects.filter(pk=foreign_member.pk).exists()


def test_not_found_pages_do_not_name_the_other_org(client, login, org, other_org):
    login(Role.OWNER, organization=other_org)
    response = client.get(org_url("portal:dashboard", org))
    assert response.status_code == 404
    assert b"Acme" not in response.content
    assert client.get("/o/no-such-org/").status_code == 404
