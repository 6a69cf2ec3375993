"""Billing's verdicts at the gate: payment past due and the customer's spend cap."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.ingest import usage_ingest
from billing.models import Plan, Subscription
from billing.subscriptions import (
    spend_cap_check,
    subscription_set_spend_cap,
    subscription_subscribe,
)
from billing.tasks import enforce_spend_caps
from common.errors import InvalidInput
from common.orgflags import PAYMENT_PAST_DUE, SPEND_CAP_REACHED, flag_clear, flag_set, flags_read
from common.redis import get_redis
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.factories import ApiKeyFactory, MembershipFactory, ProjectFactory
from tests.keys.conftest import SYSTEM, call


@pytest.fixture
def live_key(org):
    return ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="live", scopes=["read"]
    )


@pytest.fixture
def pro(org, gate, no_trial_pro):
    return subscription_subscribe(actor=SYSTEM, organization=org, plan=Plan.objects.get(code="pro"))


@pytest.fixture
def no_trial_pro(gate):
    Plan.objects.filter(code="pro").update(trial_days=0)


def test_a_past_due_org_is_refused_on_live_keys_only(gate, org, live_key):
    client = get_redis()
    flag_set(client, org.id, PAYMENT_PAST_DUE)
    assert call(gate, live_key).code == "payment_past_due"
    test_key = ApiKeyFactory(project=live_key.project, environment="test", scopes=["read"])
    assert call(gate, test_key).allowed  # the sandbox keeps working
    flag_clear(client, org.id, PAYMENT_PAST_DUE)
    assert call(gate, live_key).allowed


def test_a_flag_with_a_lifetime_lapses(gate, org):
    client = get_redis()
    flag_set(client, org.id, SPEND_CAP_REACHED, seconds=-1)  # already lapsed
    assert SPEND_CAP_REACHED not in flags_read(client, org.id)
    flag_set(client, org.id, SPEND_CAP_REACHED, seconds=60)
    assert SPEND_CAP_REACHED in flags_read(client, org.id)


def test_the_spend_cap_refuses_live_calls_once_the_bill_reaches_it(gate, org, live_key, pro):
    usage_ingest(
        events=[
            {"id": "big", "meter": "records_processed", "customer": org.slug, "quantity": "40000"}
        ]
    )  # 40 blocks x 2.50 = 100.00, + 49.00 base
    subscription_set_spend_cap(actor=SYSTEM, subscription=pro, amount=Decimal("200"))
    assert not spend_cap_check(subscription=Subscription.objects.get(pk=pro.pk))
    assert call(gate, live_key).allowed
    subscription_set_spend_cap(actor=SYSTEM, subscription=pro, amount=Decimal("149"))
    assert enforce_spend_caps() == 1
    assert call(gate, live_key).code == "spend_cap_reached"
    subscription_set_spend_cap(actor=SYSTEM, subscription=pro, amount=None)
    assert enforce_spend_caps() == 0
    spend_cap_check(subscription=Subscription.objects.get(pk=pro.pk))
    assert call(gate, live_key).allowed
    assert AuditLogEntry.objects.filter(action="subscription.spend_cap_set").count() == 3


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-5"), Decimal("NaN")])
def test_a_spend_cap_must_be_positive(pro, amount):
    with pytest.raises(InvalidInput):
        subscription_set_spend_cap(actor=SYSTEM, subscription=pro, amount=amount)
    assert Subscription.objects.get(pk=pro.pk).spend_cap is None


def test_billing_members_set_the_cap_in_the_portal_and_viewers_cannot(client, org, pro):
    url = reverse("org_billing:spend_cap", kwargs={"slug": org.slug})
    viewer = MembershipFactory(organization=org, role=Role.VIEWER).user
    client.force_login(viewer)
    assert client.post(url, {"cap-amount": "100"}).status_code == 403
    billing = MembershipFactory(organization=org, role=Role.BILLING).user
    client.force_login(billing)
    bad = client.post(url, {"cap-amount": "-1"})
    assert bad.status_code == 200
    assert Subscription.objects.get(pk=pro.pk).spend_cap is None
    assert client.post(url, {"cap-amount": "250.00"}).status_code == 302
    assert Subscription.objects.get(pk=pro.pk).spend_cap == Decimal("250.00")
    page = client.get(reverse("org_billing:overview", kwargs={"slug": org.slug}))
    assert "250.00" in page.content.decode()


def test_another_org_cannot_set_the_cap(client, org, other_org, pro):
    outsider = MembershipFactory(organization=other_org, role=Role.OWNER).user
    client.force_login(outsider)
    url = reverse("org_billing:spend_cap", kwargs={"slug": org.slug})
    assert client.post(url, {"cap-amount": "1"}).status_code == 404
    assert Subscription.objects.get(pk=pro.pk).spend_cap is None
