"""The onboarding checklist ticks from real data: keys, gate calls in the ledger, webhook
deliveries; the time to first success; test keys sealed for the docs, live keys never."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import UsageEvent
from devdocs.models import OnboardingMilestone
from devdocs.onboarding import adoption_funnel, checklist
from devdocs.reader import KEY_PLACEHOLDER, reader_for
from keys import services as key_services
from keys.models import ApiKey
from keys.tasks import drain_gate_usage
from portal.audit import Actor
from portal.roles import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.keys import conftest as gate_fixtures
from tests.keys.conftest import call
from tests.webhooks import conftest as webhook_fixtures
from webhooks.delivery import SUCCEEDED, attempt

pytestmark = pytest.mark.django_db
# Fixtures of the gate's and the webhooks' tests.
gate = gate_fixtures.gate
_webhook_settings = webhook_fixtures._webhook_settings
receiver = webhook_fixtures.receiver
make_endpoint = webhook_fixtures.make_endpoint
endpoint = webhook_fixtures.endpoint
emit_ping = webhook_fixtures.emit_ping
SYSTEM = Actor.system("test")
Step = OnboardingMilestone.Step


def _issue(project, environment="test", scopes=("read", "write", "bulk")):
    return key_services.key_create(
        actor=SYSTEM, project=project, name="k", environment=environment, scopes=list(scopes)
    )


# --- Sealed test keys ----------------------------------------------------------------------
def test_test_keys_are_sealed_for_the_docs_and_live_keys_are_not(org):
    project = ProjectFactory(organization=org)
    test_key, test_raw = _issue(project)
    live_key, _live_raw = _issue(project, "live")

    assert test_key.secret_encrypted and test_raw not in test_key.secret_encrypted
    assert key_services.test_key_secret(test_key) == test_raw
    assert live_key.secret_encrypted == ""
    assert key_services.test_key_secret(live_key) is None


def test_a_rotated_test_key_is_sealed_too_and_a_tampered_seal_reads_as_none(org):
    project = ProjectFactory(organization=org)
    key, _raw = _issue(project)
    new, new_raw = key_services.key_rotate(actor=SYSTEM, key=key, grace_period_seconds=60)
    assert key_services.test_key_secret(new) == new_raw

    ApiKey.objects.filter(pk=new.pk).update(secret_encrypted="not-a-fernet-token")
    assert key_services.test_key_secret(ApiKey.objects.get(pk=new.pk)) is None


# --- The reader's own key ------------------------------------------------------------------
class _Request:
    """What reader_for reads from a request, without a view around it."""

    def __init__(self, user, query=None):
        self.user = user
        self.GET = query or {}
        self.session = {}

    def build_absolute_uri(self, path):
        return "http://docs.test" + path


def test_reader_sees_their_own_orgs_newest_active_test_key(org, other_org):
    developer = UserFactory()
    MembershipFactory(organization=org, user=developer, role=Role.DEVELOPER)
    project = ProjectFactory(organization=org)
    _issue(project, "live")
    old, _old_raw = _issue(project)
    _new, _new_raw = _issue(project)
    key_services.key_revoke(actor=SYSTEM, key=_new)
    assert old.status == "active"

    reader = reader_for(_Request(developer))

    assert reader.organization == org
    assert reader.api_key == _old_raw
    assert reader.sandbox_url("documents", "v1") == "http://docs.test/sandbox/documents/v1"


def test_no_other_org_and_no_viewer_ever_sees_the_key(org, other_org):
    project = ProjectFactory(organization=org)
    _key, raw = _issue(project)
    outsider = UserFactory()
    MembershipFactory(organization=other_org, user=outsider, role=Role.OWNER)
    viewer = UserFactory()
    MembershipFactory(organization=org, user=viewer, role=Role.VIEWER)

    for user in (outsider, viewer):
        reader = reader_for(_Request(user, {"org": org.slug}))
        assert reader.api_key == KEY_PLACEHOLDER
        assert reader.organization != org or user == viewer
        assert raw not in repr(reader)


def test_reader_may_pick_another_of_their_orgs(org, other_org):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=Role.OWNER)
    MembershipFactory(organization=other_org, user=user, role=Role.ADMIN)
    _key, other_raw = _issue(ProjectFactory(organization=other_org))

    request = _Request(user, {"org": other_org.slug})
    assert reader_for(request).api_key == other_raw
    assert request.session["docs_org"] == other_org.slug
    assert reader_for(_Request(user, {"org": "no-such-org"})).organization == org


# --- Milestones from real calls ------------------------------------------------------------
def sandbox_get(client, raw, path="/documents/1"):
    return client.get(f"/sandbox/documents/v1{path}", headers={"authorization": f"Bearer {raw}"})


def test_a_live_call_is_recorded_when_it_reaches_the_ledger(gate, org):
    project = ProjectFactory(organization=org)
    _test_key, test_raw = _issue(project)
    _live_key, live_raw = _issue(project, "live")
    first_at = timezone.now() - timedelta(seconds=30)

    assert call(gate, test_raw, path="/v1/documents/1", ip="203.0.113.9").allowed
    drain_gate_usage()
    # The ledger row says which product and version was called (deprecation notices).
    [row] = UsageEvent.objects.filter(organization=org, meter__code="requests")
    assert row.properties == {"api": "documents/v1"}
    # A test key's call outside the sandbox is no sandbox call, and no live call either.
    assert (
        not OnboardingMilestone.objects.filter(organization=org)
        .exclude(step=Step.KEY_CREATED)
        .exists()
    )

    assert call(gate, live_raw, path="/v1/documents/3").allowed
    drain_gate_usage()
    live = OnboardingMilestone.objects.get(organization=org, step=Step.FIRST_LIVE_CALL)
    assert live.reached_at >= first_at
    assert call(gate, live_raw, path="/v1/documents/4").allowed
    drain_gate_usage()
    assert OnboardingMilestone.objects.get(pk=live.pk).reached_at == live.reached_at


def test_the_first_sandbox_call_is_the_first_the_sandbox_answered_2xx(client, gate, org):
    project = ProjectFactory(organization=org)
    _key, raw = _issue(project, scopes=("write",))
    _reader, read_raw = _issue(project, scopes=("read",))

    assert sandbox_get(client, raw).status_code == 403  # scope_missing: not a success
    assert not OnboardingMilestone.objects.filter(step=Step.FIRST_SANDBOX_CALL).exists()

    before = timezone.now()
    assert sandbox_get(client, read_raw).status_code == 200
    first = OnboardingMilestone.objects.get(organization=org, step=Step.FIRST_SANDBOX_CALL)
    assert first.reached_at >= before
    assert sandbox_get(client, read_raw, "/documents/2").status_code == 200
    assert OnboardingMilestone.objects.get(pk=first.pk).reached_at == first.reached_at


def test_a_sandbox_call_refused_by_the_schema_ticks_nothing(client, org, meters):
    import json
    from pathlib import Path

    from django.conf import settings

    from billing.demo_catalog import ensure_demo_catalog
    from keys.services import api_version_create

    ensure_demo_catalog(actor=SYSTEM)
    document = json.loads(
        (Path(settings.BASE_DIR) / "docs" / "examples" / "documents_api.json").read_text()
    )
    api_version_create(actor=SYSTEM, product_code="docs-api", version="v1", document=document)
    from django.core.cache import cache

    from billing.models import Plan
    from billing.subscriptions import subscription_subscribe

    subscription_subscribe(actor=SYSTEM, organization=org, plan=Plan.objects.get(code="pro"))
    cache.clear()  # Pro includes the write group; entitlements are cached per org
    _key, raw = _issue(ProjectFactory(organization=org), scopes=("read", "write"))

    refused = client.post(
        "/sandbox/docs-api/v1/documents",
        data={"title": ""},
        content_type="application/json",
        headers={"authorization": f"Bearer {raw}"},
    )

    assert refused.status_code == 422
    assert not OnboardingMilestone.objects.filter(step=Step.FIRST_SANDBOX_CALL).exists()


def test_checklist_ticks_from_keys_calls_and_webhooks(client, gate, org, endpoint, emit_ping):
    owner = UserFactory(date_joined=timezone.now() - timedelta(minutes=4))
    MembershipFactory(organization=org, user=owner, role=Role.OWNER)
    listed = checklist(org)
    assert [item.done for item in listed.items] == [False, False, False, False]
    assert listed.time_to_first_success is None

    project = ProjectFactory(organization=org)
    _key, raw = _issue(project)
    assert sandbox_get(client, raw).status_code == 200
    [delivery] = emit_ping("hello")
    assert attempt(delivery.pk) == SUCCEEDED

    listed = checklist(org)
    assert [item.step for item in listed.items if item.done] == [
        Step.KEY_CREATED,
        Step.FIRST_SANDBOX_CALL,
        Step.FIRST_WEBHOOK,
    ]
    assert timedelta(minutes=3) < listed.time_to_first_success < timedelta(minutes=6)
    # Stored once: the webhook step no longer needs a lookup, and does not move.
    stored = OnboardingMilestone.objects.get(organization=org, step=Step.FIRST_WEBHOOK)
    assert checklist(org).items[2].reached_at == stored.reached_at


def test_one_orgs_progress_never_ticks_anothers(client, gate, org, other_org):
    _key, raw = _issue(ProjectFactory(organization=org))
    assert sandbox_get(client, raw).status_code == 200

    assert [item.done for item in checklist(other_org).items] == [False] * 4
    assert not OnboardingMilestone.objects.filter(organization=other_org).exists()


def test_dashboard_shows_the_checklist(client, gate, org):
    owner = UserFactory()
    MembershipFactory(organization=org, user=owner, role=Role.OWNER)
    client.force_login(owner)
    _key, raw = _issue(ProjectFactory(organization=org))
    assert sandbox_get(client, raw).status_code == 200

    page = client.get(reverse("portal:dashboard", kwargs={"slug": org.slug}))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-step="key_created" data-done="true"' in html
    assert 'data-step="first_sandbox_call" data-done="true"' in html
    assert 'data-step="first_webhook" data-done="false"' in html
    assert "data-time-to-first-success" in html


def test_adoption_funnel_counts_each_step_and_the_median_time(org, other_org):
    now = timezone.now()
    for organization, minutes in ((org, 2), (other_org, 10)):
        owner = UserFactory(date_joined=now - timedelta(minutes=minutes))
        MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
        OnboardingMilestone.objects.create(
            organization=organization, step=Step.FIRST_SANDBOX_CALL, reached_at=now
        )
    OnboardingMilestone.objects.create(organization=org, step=Step.KEY_CREATED, reached_at=now)

    funnel = adoption_funnel()

    assert funnel.reached[Step.FIRST_SANDBOX_CALL] == 2
    assert funnel.reached[Step.KEY_CREATED] == 1
    assert funnel.reached[Step.FIRST_LIVE_CALL] == 0
    assert funnel.under_five_minutes == 1
    assert timedelta(minutes=5) < funnel.median_time_to_first_success < timedelta(minutes=7)


def test_operator_sees_the_funnel_in_admin(admin_client, org):
    OnboardingMilestone.objects.create(
        organization=org, step=Step.KEY_CREATED, reached_at=timezone.now()
    )
    page = admin_client.get(reverse("admin:devdocs_onboardingmilestone_changelist"))
    assert page.status_code == 200
    assert b"Adoption funnel" in page.content


def test_the_clock_starts_at_sign_up_only_for_an_owner_who_signed_up_for_the_org(org):
    now = timezone.now()
    veteran = UserFactory(date_joined=now - timedelta(days=300))
    MembershipFactory(organization=org, user=veteran, role=Role.OWNER)
    OnboardingMilestone.objects.create(
        organization=org, step=Step.FIRST_SANDBOX_CALL, reached_at=org.created_at + timedelta(1)
    )
    # An existing user's new org: from the org's creation, not from their sign-up 300 days ago.
    assert checklist(org).time_to_first_success == timedelta(1)


def test_a_live_key_alone_does_not_tick_create_a_test_key(org):
    _issue(ProjectFactory(organization=org), "live")
    assert not checklist(org).items[0].done
    _issue(ProjectFactory(organization=org), "test")
    assert checklist(org).items[0].done


def test_the_funnel_costs_the_same_queries_for_many_organizations(
    org, other_org, django_assert_max_num_queries
):
    from tests.factories import OrganizationFactory

    now = timezone.now()
    for organization in [org, other_org, *OrganizationFactory.create_batch(8)]:
        MembershipFactory(organization=organization, role=Role.OWNER)
        OnboardingMilestone.objects.create(
            organization=organization, step=Step.FIRST_SANDBOX_CALL, reached_at=now
        )
    with django_assert_max_num_queries(4):
        funnel = adoption_funnel()
    assert funnel.reached[Step.FIRST_SANDBOX_CALL] == 10
