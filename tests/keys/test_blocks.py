"""Blocks: a blocked key or address is refused with `blocked`, until lifted or expired."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from common.errors import InvalidInput
from keys.gate import VerifyInput
from keys.models import Block
from keys.services import block_create, block_lift
from portal.models import AuditLogEntry
from tests.factories import UserFactory
from tests.keys.conftest import SYSTEM, call, key_for


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Runs the commit hooks that tell the gate a block changed."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_blocked_key_is_refused_with_the_reason_and_expiry(gate, project, publish):
    key = key_for(project)
    assert call(gate, key).allowed
    until = timezone.now() + timedelta(hours=1)
    with publish():
        block_create(actor=SYSTEM, api_key=key, reason_code="abuse", expires_at=until)
    decision = call(gate, key)
    assert decision.code == "blocked"
    assert decision.block.reason_code == "abuse" and decision.block.expires_at == until


def test_a_lifted_block_lets_the_key_through_again(gate, project, publish):
    key = key_for(project)
    with publish():
        block = block_create(actor=SYSTEM, api_key=key, reason_code="customer_request")
    assert call(gate, key).code == "blocked"
    with publish():
        block_lift(actor=SYSTEM, block=block)
    assert call(gate, key).allowed
    assert AuditLogEntry.objects.filter(action__startswith="block.").count() == 2


def test_an_expired_block_no_longer_applies(gate, project, publish):
    key = key_for(project)
    with publish():
        block = block_create(
            actor=SYSTEM,
            api_key=key,
            reason_code="abuse",
            expires_at=timezone.now() + timedelta(minutes=5),
        )
    assert call(gate, key).code == "blocked"
    later = block.expires_at + timedelta(seconds=1)
    decision = gate.decide(
        VerifyInput(key=key.raw_key, method="GET", path="/v1/documents/1"), now=later
    )
    assert decision.allowed  # judged at call time from the block's expiry: no refresh needed


def test_an_ip_range_block_refuses_every_key_from_it(gate, project, publish):
    key = key_for(project)
    with publish():
        block_create(actor=SYSTEM, ip_network="198.51.100.0/24", reason_code="fraud")
    assert call(gate, key, ip="198.51.100.7").code == "blocked"
    assert call(gate, key, ip="203.0.113.1").allowed


def test_blocks_are_checked_after_the_key_and_endpoint(gate, project, publish):
    key = key_for(project, scopes=["read"])
    with publish():
        block_create(actor=SYSTEM, api_key=key, reason_code="abuse")
    assert call(gate, key, path="/v1/nowhere").code == "endpoint_unknown"
    assert call(gate, key, method="POST", path="/v1/documents").code == "scope_missing"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "api_key"),
        ({"ip_network": "not an ip"}, "allowed_cidrs"),
        ({"ip_network": "10.0.0.0/8", "reason_code": "because"}, "reason_code"),
        (
            {"ip_network": "10.0.0.0/8", "expires_at": timezone.now() - timedelta(days=1)},
            "expires_at",
        ),
    ],
)
def test_bad_blocks_are_refused(db, arguments, field):
    arguments = {"reason_code": "abuse", **arguments}
    with pytest.raises(InvalidInput) as refused:
        block_create(actor=SYSTEM, **arguments)
    assert refused.value.field == field
    assert Block.objects.count() == 0


def test_operators_block_and_lift_in_admin(client, gate, project):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    key = key_for(project)
    add = reverse("admin:keys_block_add")
    assert client.get(add).status_code == 200
    bad = client.post(add, {"ip_network": "nope", "reason_code": "abuse"})
    assert bad.status_code == 200 and Block.objects.count() == 0
    created = client.post(
        add, {"api_key": str(key.pk), "reason_code": "abuse", "reason": "scraping"}
    )
    assert created.status_code == 302
    block = Block.objects.get()
    client.post(
        reverse("admin:keys_block_changelist"),
        {"action": "lift_blocks", "_selected_action": [block.pk]},
    )
    block.refresh_from_db()
    assert block.lifted_at is not None


def test_a_key_denied_too_often_is_blocked_automatically(
    gate, project, settings, django_capture_on_commit_callbacks
):
    settings.GATE_AUTO_BLOCK_DENIALS_PER_MINUTE = 3
    key = key_for(project, scopes=["read"])
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(4):  # the fourth denial crosses the threshold
            assert call(gate, key, method="POST", path="/v1/documents").code == "scope_missing"
    block = Block.objects.get(api_key_id=key.id)
    assert block.reason_code == "automatic" and block.created_by == "system:gate"
    assert block.expires_at > timezone.now()
    assert call(gate, key).code == "blocked"  # even a call it could otherwise make


def test_revoked_keys_and_invalid_keys_do_not_count_towards_a_block(
    gate, project, settings, django_capture_on_commit_callbacks
):
    settings.GATE_AUTO_BLOCK_DENIALS_PER_MINUTE = 1
    expired = key_for(project, expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert call(gate, expired).code == "key_expired"
    assert Block.objects.count() == 0


def test_customers_block_and_lift_their_own_keys_in_the_portal(client, gate, org, project):
    from portal.roles import Role
    from tests.factories import MembershipFactory

    developer = MembershipFactory(organization=org, role=Role.DEVELOPER).user
    client.force_login(developer)
    key = key_for(project)
    url = reverse("portal:key_block", kwargs={"slug": org.slug, "key_id": key.id})
    assert client.get(url).status_code == 200
    assert client.post(url, {"duration": "3600", "reason": "leaked"}).status_code == 302
    block = Block.objects.get(api_key=key)
    assert block.reason_code == "customer_request" and block.expires_at is not None
    listing = client.get(reverse("portal:key_list", kwargs={"slug": org.slug})).content.decode()
    assert "leaked" in listing and key.prefix in listing
    lift = reverse("portal:block_lift", kwargs={"slug": org.slug, "block_id": block.id})
    assert client.post(lift).status_code == 302
    block.refresh_from_db()
    assert block.lifted_at is not None


def test_customers_cannot_lift_the_operators_blocks_or_touch_other_orgs(
    client, gate, org, other_org, project
):
    from portal.roles import Role
    from tests.factories import MembershipFactory

    key = key_for(project)
    operator_block = block_create(actor=SYSTEM, api_key=key, reason_code="abuse")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    client.force_login(owner)
    lift = reverse("portal:block_lift", kwargs={"slug": org.slug, "block_id": operator_block.id})
    assert client.post(lift).status_code == 403
    outsider = MembershipFactory(organization=other_org, role=Role.OWNER).user
    client.force_login(outsider)
    foreign = reverse(
        "portal:block_lift", kwargs={"slug": other_org.slug, "block_id": operator_block.id}
    )
    assert client.post(foreign).status_code == 404
    block_url = reverse("portal:key_block", kwargs={"slug": other_org.slug, "key_id": key.id})
    assert client.post(block_url, {"duration": ""}).status_code == 404
    operator_block.refresh_from_db()
    assert operator_block.lifted_at is None and Block.objects.count() == 1


def test_viewers_cannot_block_keys(client, gate, org, project):
    from portal.roles import Role
    from tests.factories import MembershipFactory

    client.force_login(MembershipFactory(organization=org, role=Role.VIEWER).user)
    key = key_for(project)
    url = reverse("portal:key_block", kwargs={"slug": org.slug, "key_id": key.id})
    assert client.post(url, {"duration": ""}).status_code == 403
    assert Block.objects.count() == 0
