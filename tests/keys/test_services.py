"""Key services and the key check: issue, rotate with a grace period, revoke, what the gate sees."""

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from common.errors import Conflict, InvalidInput
from keys import services
from keys.format import key_generate, key_is_well_formed
from keys.models import ApiKey
from keys.selectors import ip_in_cidrs, key_check
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.factories import ApiKeyFactory, ProjectFactory, UserFactory

ACTOR = Actor.system("tests")


@pytest.fixture
def project(org):
    return ProjectFactory(organization=org)


@pytest.fixture
def issued(project):
    """A key issued through the service, with its secret."""
    return services.key_create(actor=ACTOR, project=project, name="ci", environment="test")


def _typo(raw: str, index: int) -> str:
    replacement = "Z" if raw[index] != "Z" else "Y"
    return raw[:index] + replacement + raw[index + 1 :]


# --- Issuing -----------------------------------------------------------------------------
@pytest.mark.parametrize("environment", ["test", "live"])
def test_issued_key_names_its_environment_and_is_well_formed(project, environment):
    key, raw = services.key_create(actor=ACTOR, project=project, name="ci", environment=environment)
    assert raw.startswith(f"tg_{environment}_")
    assert key_is_well_formed(raw)
    assert key.environment == environment
    assert key.organization_id == project.organization_id


def test_issued_key_is_stored_as_sha256_and_a_visible_prefix(issued):
    key, raw = issued
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert row["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert row["prefix"] == raw[:16]
    assert raw not in json.dumps(row, default=str)


def test_issued_key_defaults_to_the_read_scope_and_sorts_scopes(project):
    key, _ = services.key_create(actor=ACTOR, project=project, name="a", environment="test")
    assert key.scopes == ["read"]
    key, _ = services.key_create(
        actor=ACTOR,
        project=project,
        name="b",
        environment="test",
        scopes=["write", "bulk", "write"],
    )
    assert key.scopes == ["bulk", "write"]


def test_issued_key_records_the_acting_user(project):
    user = UserFactory()
    key, _ = services.key_create(
        actor=Actor(user=user), project=project, name="ci", environment="test"
    )
    assert key.created_by == user


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"environment": "prod"}, "environment"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "read"}, "scopes"),
        ({"scopes": ["Read"]}, "scopes"),
        ({"scopes": [f"s{i}" for i in range(51)]}, "scopes"),
        ({"allowed_cidrs": ["10.0.0.0/33"]}, "allowed_cidrs"),
        ({"allowed_cidrs": "10.0.0.0/8"}, "allowed_cidrs"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expires_at"),
        ({"expires_at": datetime(2099, 1, 1)}, "expires_at"),
    ],
    ids=[
        "empty name",
        "blank name",
        "long name",
        "bad environment",
        "no scopes",
        "scopes not a list",
        "bad scope",
        "too many scopes",
        "bad cidr",
        "cidrs not a list",
        "past expiry",
        "naive expiry",
    ],
)
def test_key_create_refuses_invalid_input_and_stores_nothing(project, fields, field):
    arguments = {"name": "ci", "environment": "test", **fields}
    with pytest.raises(InvalidInput) as raised:
        services.key_create(actor=ACTOR, project=project, **arguments)
    assert raised.value.field == field
    assert not ApiKey.objects.exists()
    assert not AuditLogEntry.objects.exists()


# --- The key check -----------------------------------------------------------------------
def test_key_check_allows_an_active_key(issued):
    key, raw = issued
    check = key_check(raw_key=raw)
    assert (check.allowed, check.code, check.key) == (True, "ok", key)


@pytest.mark.parametrize("index", [0, 5, 10, 20, 39, 41, 45])
def test_key_with_a_one_character_typo_is_malformed_without_a_query(
    issued, index, django_assert_num_queries
):
    _, raw = issued
    with django_assert_num_queries(0):
        check = key_check(raw_key=_typo(raw, index))
    assert (check.allowed, check.code, check.key) == (False, "key_malformed", None)


@pytest.mark.parametrize(
    "raw", ["", None, "tg_test_", "hello", "tg_prod_" + "a" * 38, "Bearer tg_test_abc"]
)
def test_key_check_calls_garbage_malformed_without_a_query(db, raw, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert key_check(raw_key=raw).code == "key_malformed"


def test_well_formed_unknown_key_is_invalid(db):
    check = key_check(raw_key=key_generate("live"))
    assert (check.allowed, check.code, check.key) == (False, "key_invalid", None)


def test_key_past_its_expiry_is_expired(project):
    key = ApiKeyFactory(project=project, expires_at=timezone.now() + timedelta(hours=1))
    assert key_check(raw_key=key.raw_key).allowed
    later = timezone.now() + timedelta(hours=2)
    assert key_check(raw_key=key.raw_key, now=later).code == "key_expired"


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("192.168.0.7", True),
        ("192.168.1.7", False),
        ("11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:db8:ffff::42", True),
        ("2001:db9::1", False),
        ("::1", False),
        (None, False),
        ("", False),
        ("not-an-ip", False),
    ],
)
def test_key_with_cidrs_is_checked_against_ipv4_and_ipv6_addresses(project, ip, allowed):
    _key, raw = services.key_create(
        actor=ACTOR,
        project=project,
        name="ci",
        environment="live",
        allowed_cidrs=["10.0.0.0/8", "192.168.0.0/24", "2001:db8::/32"],
    )
    check = key_check(raw_key=raw, ip=ip)
    assert check.allowed is allowed
    assert check.code == ("ok" if allowed else "ip_not_allowed")


def test_key_without_cidrs_is_allowed_from_anywhere(issued):
    _, raw = issued
    assert key_check(raw_key=raw, ip="203.0.113.9").allowed
    assert key_check(raw_key=raw, ip=None).allowed


def test_ip_in_cidrs_handles_single_addresses():
    assert ip_in_cidrs("203.0.113.9", ["203.0.113.9/32"])
    assert not ip_in_cidrs("203.0.113.10", ["203.0.113.9/32"])


# --- Rotation ----------------------------------------------------------------------------
def test_rotated_key_works_until_grace_period_ends(issued):
    key, old_raw = issued
    started = timezone.now()
    new, new_raw = services.key_rotate(actor=ACTOR, key=key, grace_period_seconds=3600)
    key.refresh_from_db()
    assert key.replaced_by == new
    assert key.status_at(started + timedelta(minutes=59)) == ApiKey.Status.ROTATING
    assert key_check(raw_key=old_raw, now=started + timedelta(minutes=59)).allowed
    assert key_check(raw_key=old_raw, now=started + timedelta(minutes=61)).code == "key_expired"
    assert key_check(raw_key=new_raw, now=started + timedelta(days=365)).allowed


def test_rotation_with_zero_grace_expires_the_old_key_at_once(issued):
    key, old_raw = issued
    _, new_raw = services.key_rotate(actor=ACTOR, key=key, grace_period_seconds=0)
    assert key_check(raw_key=old_raw).code == "key_expired"
    assert key_check(raw_key=new_raw).allowed


def test_rotation_uses_the_default_grace_period(issued, settings):
    settings.KEY_ROTATION_DEFAULT_GRACE_SECONDS = 120
    key, _raw = issued
    services.key_rotate(actor=ACTOR, key=key)
    key.refresh_from_db()
    remaining = key.grace_ends_at - timezone.now()
    assert timedelta(seconds=100) < remaining <= timedelta(seconds=120)


def test_successor_inherits_everything_but_the_secret(project):
    expires_at = timezone.now() + timedelta(days=90)
    key, old_raw = services.key_create(
        actor=ACTOR,
        project=project,
        name="edge",
        environment="live",
        scopes=["read", "write"],
        allowed_cidrs=["10.0.0.0/8"],
        expires_at=expires_at,
    )
    new, new_raw = services.key_rotate(actor=ACTOR, key=key)
    assert new_raw != old_raw
    assert new_raw.startswith("tg_live_")
    assert (new.name, new.environment, new.scopes, new.allowed_cidrs, new.expires_at) == (
        "edge",
        "live",
        ["read", "write"],
        ["10.0.0.0/8"],
        expires_at,
    )
    assert new.project == project
    assert new.key_hash != key.key_hash


@pytest.mark.parametrize("grace", [-1, 2592001, 1.5, 60.0, "60", True, False], ids=repr)
def test_rotation_refuses_a_grace_period_that_is_not_a_whole_number_in_range(issued, grace):
    key, _raw = issued
    with pytest.raises(InvalidInput) as raised:
        services.key_rotate(actor=ACTOR, key=key, grace_period_seconds=grace)
    assert raised.value.field == "grace_period_seconds"
    key.refresh_from_db()
    assert key.replaced_by is None
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("grace", [0, 2592000])
def test_rotation_accepts_the_grace_period_bounds(issued, grace):
    key, _ = issued
    services.key_rotate(actor=ACTOR, key=key, grace_period_seconds=grace)


def test_rotating_key_cannot_be_rotated_again(issued):
    key, _ = issued
    services.key_rotate(actor=ACTOR, key=key)
    with pytest.raises(Conflict) as raised:
        services.key_rotate(actor=ACTOR, key=key)
    assert raised.value.code == "key_not_active"
    assert ApiKey.objects.count() == 2


def test_expired_key_cannot_be_rotated(project):
    key = ApiKeyFactory(project=project, expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Conflict) as raised:
        services.key_rotate(actor=ACTOR, key=key)
    assert raised.value.code == "key_not_active"


# --- Revocation --------------------------------------------------------------------------
def test_revoked_key_never_works_again(issued):
    key, raw = issued
    services.key_revoke(actor=ACTOR, key=key)
    assert key_check(raw_key=raw).code == "key_revoked"
    with pytest.raises(Conflict) as raised:
        services.key_rotate(actor=ACTOR, key=key)
    assert raised.value.code == "key_not_active"
    assert key_check(raw_key=raw, now=timezone.now() + timedelta(days=3650)).code == "key_revoked"
    assert ApiKey.objects.count() == 1


def test_revoking_the_old_key_during_its_grace_period_stops_it(issued):
    key, old_raw = issued
    _, new_raw = services.key_rotate(actor=ACTOR, key=key, grace_period_seconds=3600)
    services.key_revoke(actor=ACTOR, key=key)
    assert key_check(raw_key=old_raw).code == "key_revoked"
    assert key_check(raw_key=new_raw).allowed


def test_revocation_is_idempotent_and_audited_once(issued):
    key, _ = issued
    first = services.key_revoke(actor=ACTOR, key=key)
    second = services.key_revoke(actor=ACTOR, key=key)
    assert first.revoked_at == second.revoked_at
    assert AuditLogEntry.objects.filter(action="key.revoked").count() == 1


def test_key_status_transitions(issued):
    key, _ = issued
    now = timezone.now()
    assert key.status_at(now) == ApiKey.Status.ACTIVE
    services.key_rotate(actor=ACTOR, key=key, grace_period_seconds=60)
    key.refresh_from_db()
    assert key.status_at(now + timedelta(seconds=30)) == ApiKey.Status.ROTATING
    assert key.status_at(now + timedelta(seconds=120)) == ApiKey.Status.EXPIRED
    services.key_revoke(actor=ACTOR, key=key)
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED
    assert key.status_at(now + timedelta(days=1)) == ApiKey.Status.REVOKED


def test_revocation_wins_over_expiry(project):
    key = ApiKeyFactory(
        project=project,
        expires_at=timezone.now() - timedelta(days=1),
        revoked_at=timezone.now() - timedelta(hours=1),
    )
    assert key.status == ApiKey.Status.REVOKED
    assert key_check(raw_key=key.raw_key).code == "key_revoked"


# --- Last use ----------------------------------------------------------------------------
def test_last_use_is_written_at_most_once_a_minute(issued, django_assert_num_queries):
    key, _ = issued
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    with django_assert_num_queries(1):
        services.key_mark_used(key=key, now=now)
    with django_assert_num_queries(0):
        services.key_mark_used(key=key, now=now + timedelta(seconds=59))
    with django_assert_num_queries(1):
        services.key_mark_used(key=key, now=now + timedelta(seconds=61))
    key.refresh_from_db()
    assert key.last_used_at == now + timedelta(seconds=61)


# --- Concurrency -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_of_one_key_produce_one_successor():
    key = ApiKeyFactory()
    barrier = threading.Barrier(2)
    successors: list[ApiKey] = []
    conflicts: list[str] = []
    failures: list[BaseException] = []

    def rotate() -> None:
        try:
            barrier.wait(timeout=10)
            new, _ = services.key_rotate(actor=ACTOR, key=key)
            successors.append(new)
        except Conflict as error:
            conflicts.append(error.code)
        except BaseException as error:  # surfaced below, not lost in the thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not failures
    assert len(successors) == 1
    assert conflicts == ["key_not_active"]
    key.refresh_from_db()
    assert key.replaced_by_id == successors[0].id
    assert ApiKey.objects.count() == 2
    assert AuditLogEntry.objects.filter(action="key.rotated").count() == 1
