"""Tenancy services: organizations, memberships, invitations, projects and management tokens."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from common.secrets import checksum_ok, hash_secret
from portal import services
from portal.audit import Actor
from portal.models import ApiToken, AuditLogEntry, Invitation, Membership, Organization, Project
from portal.roles import Role
from portal.scopes import OPERATOR_SCOPES, ORG_SCOPES
from tests.conftest import bearer_client
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

SYSTEM = Actor.system("tests")


@pytest.fixture
def owner_membership(org):
    return MembershipFactory(organization=org, role=Role.OWNER)


@pytest.fixture
def actor(owner_membership):
    return Actor(user=owner_membership.user)


# --- Users -------------------------------------------------------------------------------
def test_user_get_or_create_reuses_an_account_whatever_the_case(db):
    user, created = services.user_get_or_create(email="Ada@Example.com")
    assert created
    assert user.email == "ada@example.com"
    assert not user.has_usable_password()
    again, created = services.user_get_or_create(email="ADA@example.com")
    assert (again, created) == (user, False)


def test_user_get_or_create_refuses_an_invalid_address(db):
    with pytest.raises(InvalidInput):
        services.user_get_or_create(email="not an address")


# --- Organizations -----------------------------------------------------------------------
def test_organization_create_makes_the_creator_its_owner(db):
    user = UserFactory()
    organization = services.organization_create(actor=Actor(user=user), name="Initech", owner=user)
    assert organization.slug == "initech"
    membership = Membership.objects.get(organization=organization)
    assert (membership.user, membership.role) == (user, Role.OWNER)


@pytest.mark.parametrize(
    ("name", "slug", "expected"),
    [
        ("Umbrella Corp", None, "umbrella-corp"),
        ("x", "my-org-2", "my-org-2"),
        ("x", "MyOrg", "myorg"),
        ("x", "a", "a"),
        ("x", "a" * 50, "a" * 50),
        ("x", "a--b", "a--b"),
    ],
)
def test_organization_slug_is_derived_or_normalised(db, name, slug, expected):
    user = UserFactory()
    organization = services.organization_create(actor=SYSTEM, name=name, owner=user, slug=slug)
    assert organization.slug == expected


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("x", "a_b"),
        ("x", "a b"),
        ("x", "a" * 51),
        ("x", "café"),
        ("x", "a.b"),
        ("x", "admin"),
        ("x", "api"),
        ("x", "new"),
        ("!!!", None),
        ("x", "---"),
    ],
)
def test_organization_create_refuses_an_invalid_or_reserved_slug(db, name, slug):
    user = UserFactory()
    with pytest.raises(InvalidInput) as raised:
        services.organization_create(actor=SYSTEM, name=name, owner=user, slug=slug)
    assert (raised.value.code, raised.value.field) == ("invalid_slug", "slug")
    assert not Organization.objects.exists()
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, None])
def test_organization_create_refuses_a_blank_or_long_name(db, name):
    with pytest.raises(InvalidInput) as raised:
        services.organization_create(actor=SYSTEM, name=name, owner=UserFactory(), slug="ok")
    assert raised.value.field == "name"
    assert not Organization.objects.exists()


def test_organization_slug_must_be_unique(org):
    user = UserFactory()
    with pytest.raises(Conflict) as raised:
        services.organization_create(actor=SYSTEM, name="Another Acme", owner=user, slug="acme")
    assert (raised.value.code, raised.value.field) == ("slug_taken", "slug")
    assert Organization.objects.count() == 1
    assert not Membership.objects.filter(user=user).exists()
    assert not AuditLogEntry.objects.exists()


# --- Memberships -------------------------------------------------------------------------
def test_only_owner_cannot_be_demoted(owner_membership, actor):
    with pytest.raises(Conflict) as raised:
        services.membership_change_role(
            actor=actor, acting_role=Role.OWNER, membership=owner_membership, role=Role.ADMIN
        )
    assert raised.value.code == "last_owner"
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER
    assert not AuditLogEntry.objects.exists()


def test_only_owner_cannot_be_removed(owner_membership, actor):
    with pytest.raises(Conflict) as raised:
        services.membership_remove(actor=actor, acting_role=Role.OWNER, membership=owner_membership)
    assert raised.value.code == "last_owner"
    assert Membership.objects.filter(pk=owner_membership.pk).exists()


def test_one_of_two_owners_can_be_demoted_and_then_the_other_cannot(org, owner_membership, actor):
    second = MembershipFactory(organization=org, role=Role.OWNER)
    changed = services.membership_change_role(
        actor=actor, acting_role=Role.OWNER, membership=second, role=Role.DEVELOPER
    )
    assert changed.role == Role.DEVELOPER
    with pytest.raises(Conflict):
        services.membership_change_role(
            actor=actor, acting_role=Role.OWNER, membership=owner_membership, role=Role.VIEWER
        )


def test_owner_can_promote_to_owner(org, owner_membership, actor):
    member = MembershipFactory(organization=org, role=Role.DEVELOPER)
    services.membership_change_role(
        actor=actor, acting_role=Role.OWNER, membership=member, role=Role.OWNER
    )
    member.refresh_from_db()
    assert member.role == Role.OWNER


def test_admin_cannot_grant_owner(org, owner_membership):
    admin = MembershipFactory(organization=org, role=Role.ADMIN)
    member = MembershipFactory(organization=org, role=Role.DEVELOPER)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            actor=Actor(user=admin.user), acting_role=Role.ADMIN, membership=member, role=Role.OWNER
        )
    member.refresh_from_db()
    assert member.role == Role.DEVELOPER


def test_admin_cannot_change_or_remove_an_owner(org, owner_membership):
    admin = MembershipFactory(organization=org, role=Role.ADMIN)
    MembershipFactory(organization=org, role=Role.OWNER)
    admin_actor = Actor(user=admin.user)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            actor=admin_actor,
            acting_role=Role.ADMIN,
            membership=owner_membership,
            role=Role.VIEWER,
        )
    with pytest.raises(PermissionDenied):
        services.membership_remove(
            actor=admin_actor, acting_role=Role.ADMIN, membership=owner_membership
        )
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER


def test_admin_can_grant_any_other_role(org, owner_membership):
    admin = MembershipFactory(organization=org, role=Role.ADMIN)
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    for role in (Role.ADMIN, Role.BILLING, Role.DEVELOPER):
        services.membership_change_role(
            actor=Actor(user=admin.user), acting_role=Role.ADMIN, membership=member, role=role
        )
        member.refresh_from_db()
        assert member.role == role


@pytest.mark.parametrize("acting_role", [Role.DEVELOPER, Role.BILLING, Role.VIEWER])
def test_roles_below_admin_cannot_change_roles(org, owner_membership, acting_role):
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            actor=SYSTEM, acting_role=acting_role, membership=member, role=Role.VIEWER
        )


def test_unknown_role_is_refused(org, owner_membership, actor):
    member = MembershipFactory(organization=org, role=Role.VIEWER)
    with pytest.raises(InvalidInput) as raised:
        services.membership_change_role(
            actor=actor, acting_role=Role.OWNER, membership=member, role="superuser"
        )
    assert raised.value.field == "role"


def test_member_can_be_removed(org, owner_membership, actor):
    member = MembershipFactory(organization=org, role=Role.DEVELOPER)
    services.membership_remove(actor=actor, acting_role=Role.OWNER, membership=member)
    assert not Membership.objects.filter(pk=member.pk).exists()


# --- Invitations -------------------------------------------------------------------------
def test_invitation_is_emailed_with_a_link_whose_secret_is_stored_hashed(
    org, actor, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, raw = services.invitation_create(
            actor=actor,
            acting_role=Role.OWNER,
            organization=org,
            email="New@Example.com",
            role=Role.DEVELOPER,
        )
    assert invitation.email == "new@example.com"
    assert invitation.token_hash == hash_secret(raw)
    assert raw.startswith("tg_inv_")
    assert checksum_ok(raw)
    assert invitation.expires_at > timezone.now() + timedelta(days=6)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    assert f"/invitations/{raw}/" in mail.outbox[0].body


def test_invitation_email_waits_for_the_commit(org, actor, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.invitation_create(
            actor=actor,
            acting_role=Role.OWNER,
            organization=org,
            email="a@example.com",
            role="viewer",
        )
    assert len(callbacks) == 1
    assert mail.outbox == []


def test_inviting_again_revokes_the_earlier_invitation(org, actor):
    first, _ = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="a@example.com", role="viewer"
    )
    second, _ = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="a@example.com", role="admin"
    )
    first.refresh_from_db()
    assert first.status == Invitation.Status.REVOKED
    assert second.status == Invitation.Status.PENDING


@pytest.mark.parametrize(
    ("email", "role", "acting_role", "error"),
    [
        ("not-an-address", Role.VIEWER, Role.OWNER, InvalidInput),
        ("a@example.com", "superuser", Role.OWNER, InvalidInput),
        ("a@example.com", Role.OWNER, Role.ADMIN, PermissionDenied),
        ("a@example.com", Role.VIEWER, Role.DEVELOPER, PermissionDenied),
    ],
    ids=["bad email", "unknown role", "admin invites owner", "developer invites"],
)
def test_invitation_create_refuses(org, actor, email, role, acting_role, error):
    with pytest.raises(error):
        services.invitation_create(
            actor=actor, acting_role=acting_role, organization=org, email=email, role=role
        )
    assert not Invitation.objects.exists()
    assert not AuditLogEntry.objects.exists()


def test_inviting_an_existing_member_is_a_conflict(org, owner_membership, actor):
    with pytest.raises(Conflict) as raised:
        services.invitation_create(
            actor=actor,
            acting_role=Role.OWNER,
            organization=org,
            email=owner_membership.user.email.upper(),
            role=Role.VIEWER,
        )
    assert raised.value.code == "already_member"


def test_accepting_an_invitation_makes_a_membership_with_its_role(org, actor):
    _, raw = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="b@example.com", role="billing"
    )
    invitee = UserFactory(email="b@example.com")
    membership = services.invitation_accept(actor=Actor(user=invitee), raw_token=raw, user=invitee)
    assert (membership.organization, membership.user, membership.role) == (org, invitee, "billing")
    invitation = Invitation.objects.get()
    assert invitation.status == Invitation.Status.ACCEPTED
    assert invitation.accepted_at is not None


def test_invitation_cannot_be_accepted_twice_or_by_someone_else(org, actor):
    _, raw = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="b@example.com", role="viewer"
    )
    stranger = UserFactory(email="mallory@example.com")
    with pytest.raises(PermissionDenied):
        services.invitation_accept(actor=Actor(user=stranger), raw_token=raw, user=stranger)
    invitee = UserFactory(email="b@example.com")
    services.invitation_accept(actor=Actor(user=invitee), raw_token=raw, user=invitee)
    with pytest.raises(NotFound):
        services.invitation_accept(actor=Actor(user=invitee), raw_token=raw, user=invitee)
    assert not Membership.objects.filter(user=stranger).exists()


def test_expired_revoked_or_unknown_invitations_cannot_be_accepted(org, actor):
    invitee = UserFactory(email="b@example.com")
    invitation, raw = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="b@example.com", role="viewer"
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    with pytest.raises(NotFound):
        services.invitation_accept(actor=SYSTEM, raw_token=raw, user=invitee)

    invitation, raw = services.invitation_create(
        actor=actor, acting_role=Role.OWNER, organization=org, email="b@example.com", role="viewer"
    )
    services.invitation_revoke(actor=actor, invitation=invitation)
    with pytest.raises(NotFound):
        services.invitation_accept(actor=SYSTEM, raw_token=raw, user=invitee)

    with pytest.raises(NotFound):
        services.invitation_accept(actor=SYSTEM, raw_token="tg_inv_unknown", user=invitee)
    assert not Membership.objects.filter(user=invitee).exists()


# --- Projects ----------------------------------------------------------------------------
def test_project_create_trims_and_stores(org, actor):
    project = services.project_create(
        actor=actor, organization=org, name="  Checkout  ", description=" Pay "
    )
    assert (project.name, project.description, project.organization) == ("Checkout", "Pay", org)


def test_project_name_must_be_unique_within_the_org(org, other_org, actor):
    ProjectFactory(organization=org, name="Checkout")
    with pytest.raises(Conflict) as raised:
        services.project_create(actor=actor, organization=org, name="Checkout")
    assert (raised.value.code, raised.value.field) == ("project_name_taken", "name")
    services.project_create(actor=actor, organization=other_org, name="Checkout")
    assert Project.objects.filter(name="Checkout").count() == 2
    assert AuditLogEntry.objects.filter(action="project.created").count() == 1


@pytest.mark.parametrize(
    ("name", "description", "field"),
    [
        ("", "", "name"),
        ("  ", "", "name"),
        ("x" * 201, "", "name"),
        ("Ok", "x" * 2001, "description"),
    ],
)
def test_project_create_refuses_invalid_fields(org, actor, name, description, field):
    with pytest.raises(InvalidInput) as raised:
        services.project_create(actor=actor, organization=org, name=name, description=description)
    assert raised.value.field == field
    assert not Project.objects.exists()


# --- Management tokens -------------------------------------------------------------------
def test_org_token_with_all_scopes_gets_every_org_scope_and_works(org, actor):
    token, raw = services.token_create(
        actor=actor, kind="org", name="ci", scopes=["all"], organization=org
    )
    assert token.scopes == sorted(ORG_SCOPES)
    assert raw.startswith("tg_org_")
    assert checksum_ok(raw)
    assert token.token_hash == hash_secret(raw)
    assert raw.startswith(token.prefix)
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    assert bearer_client(token_with_raw(token, raw)).get("/api/v1/keys").status_code == 200


def token_with_raw(token: ApiToken, raw: str) -> ApiToken:
    token.raw_token = raw
    return token


def test_operator_token_with_all_scopes_gets_every_operator_scope(db):
    token, raw = services.token_create(
        actor=SYSTEM, kind="operator", name="gateway", scopes=["all"]
    )
    assert token.scopes == sorted(OPERATOR_SCOPES)
    assert token.organization is None
    assert raw.startswith("tg_op_")


def test_token_scopes_are_deduplicated_and_sorted(org, actor):
    token, _ = services.token_create(
        actor=actor,
        kind="org",
        name="ci",
        scopes=["keys:write", "audit:read", "keys:write"],
        organization=org,
    )
    assert token.scopes == ["audit:read", "keys:write"]


@pytest.mark.parametrize(
    ("kind", "scopes"),
    [
        ("org", ["keys:delete"]),
        ("org", ["admin"]),
        ("org", ["all", "keys:read"]),
        ("operator", ["keys:read"]),
        ("operator", ["gate:verify", "nonsense"]),
    ],
)
def test_unknown_scopes_are_refused(org, kind, scopes):
    organization = org if kind == "org" else None
    with pytest.raises(InvalidInput) as raised:
        services.token_create(
            actor=SYSTEM, kind=kind, name="t", scopes=scopes, organization=organization
        )
    assert (raised.value.code, raised.value.field) == ("invalid_scope", "scopes")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"kind": "org", "scopes": []}, "scopes"),
        ({"kind": "robot", "scopes": ["all"]}, "kind"),
        ({"kind": "org", "scopes": ["all"], "name": " "}, "name"),
        (
            {"kind": "org", "scopes": ["all"], "expires_at": timezone.now() - timedelta(days=1)},
            "expires_at",
        ),
    ],
)
def test_token_create_refuses_invalid_input(org, arguments, field):
    arguments = {"name": "t", "organization": org, **arguments}
    with pytest.raises(InvalidInput) as raised:
        services.token_create(actor=SYSTEM, **arguments)
    assert raised.value.field == field
    assert not ApiToken.objects.exists()


def test_org_token_needs_an_org_and_operator_token_must_not_have_one(org):
    with pytest.raises(InvalidInput):
        services.token_create(actor=SYSTEM, kind="org", name="t", scopes=["all"])
    with pytest.raises(InvalidInput):
        services.token_create(
            actor=SYSTEM, kind="operator", name="t", scopes=["all"], organization=org
        )
    assert not ApiToken.objects.exists()


def test_revoked_token_is_refused_at_once_and_revoking_again_changes_nothing(org, actor):
    token, raw = services.token_create(
        actor=actor, kind="org", name="ci", scopes=["all"], organization=org
    )
    client = bearer_client(token_with_raw(token, raw))
    assert client.get("/api/v1/projects").status_code == 200
    revoked = services.token_revoke(actor=actor, token=token)
    assert revoked.revoked_at is not None
    assert not revoked.is_active
    assert client.get("/api/v1/projects").status_code == 401
    again = services.token_revoke(actor=actor, token=token)
    assert again.revoked_at == revoked.revoked_at
    assert AuditLogEntry.objects.filter(action="token.revoked").count() == 1


def test_expired_token_is_inactive(org):
    token, _ = services.token_create(
        actor=SYSTEM,
        kind="org",
        name="t",
        scopes=["all"],
        organization=org,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert token.is_active
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    token.refresh_from_db()
    assert not token.is_active
