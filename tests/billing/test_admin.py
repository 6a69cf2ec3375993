"""Django admin for metering and pricing: every page opens, rules hold, actions use services."""

import pytest
from django.urls import reverse

from billing.demo_catalog import ensure_demo_catalog
from billing.models import (
    AddOn,
    Charge,
    Coupon,
    CreditGrant,
    Meter,
    Plan,
    PlanVersion,
    Subscription,
    SubscriptionPhase,
    UsageCorrection,
    UsageEvent,
    UsageRollup,
)
from billing.subscriptions import subscription_subscribe
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.factories import UserFactory

MODELS = [
    Meter,
    UsageEvent,
    UsageRollup,
    UsageCorrection,
    Plan,
    PlanVersion,
    AddOn,
    Coupon,
    Subscription,
    CreditGrant,
]


@pytest.fixture
def operator(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def catalog(meters, org):
    ensure_demo_catalog(actor=Actor.system("test"))
    subscription_subscribe(
        actor=Actor.system("test"), organization=org, plan=Plan.objects.get(code="pro")
    )


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_changelist_opens(client, operator, catalog, model):
    url = reverse(f"admin:billing_{model._meta.model_name}_changelist")
    assert client.get(url).status_code == 200


def test_a_version_with_subscribers_is_read_only_in_admin(client, operator, catalog):
    version = Plan.objects.get(code="pro").current_version()
    url = reverse("admin:billing_planversion_change", args=[version.pk])
    page = client.get(url).content.decode()
    assert 'name="base_fee"' not in page  # shown, not editable
    unlocked = Plan.objects.get(code="business").current_version()  # nobody subscribed
    unlocked_page = client.get(reverse("admin:billing_planversion_change", args=[unlocked.pk]))
    assert 'name="base_fee"' in unlocked_page.content.decode()


def test_copy_as_new_version_keeps_prices_and_is_editable(client, operator, catalog):
    plan = Plan.objects.get(code="pro")
    old = plan.current_version()
    client.post(
        reverse("admin:billing_planversion_changelist"),
        {"action": "copy_as_new_version", "_selected_action": [old.pk]},
    )
    new = plan.current_version()
    assert new.number == old.number + 1
    assert new.base_fee == old.base_fee
    assert [c.meter_id for c in new.charges.all()] == [c.meter_id for c in old.charges.all()]
    assert not new.is_locked
    assert AuditLogEntry.objects.filter(action="plan.version_created").exists()


def test_migrate_action_schedules_subscribers_at_their_next_period(client, operator, catalog, org):
    plan = Plan.objects.get(code="pro")
    client.post(
        reverse("admin:billing_planversion_changelist"),
        {"action": "copy_as_new_version", "_selected_action": [plan.current_version().pk]},
    )
    new = plan.current_version()
    client.post(
        reverse("admin:billing_planversion_changelist"),
        {"action": "migrate_subscribers", "_selected_action": [new.pk]},
    )
    subscription = Subscription.objects.get(organization=org)
    scheduled = SubscriptionPhase.objects.get(subscription=subscription, plan_version=new)
    assert scheduled.starts_at == subscription.current_period_end


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        (
            '[{"up_to": null, "unit_amount": "1"}, {"up_to": null, "unit_amount": "1"}]',
            "Only the last tier",
        ),
        (
            '[{"up_to": "10", "unit_amount": "1"}, {"up_to": "5", "unit_amount": "1"},'
            ' {"up_to": null, "unit_amount": "1"}]',
            "Tier bounds (up_to) must increase",
        ),
        ('[{"up_to": "10", "unit_amount": "1"}]', "The last tier must have no upper bound"),
    ],
)
def test_charge_form_applies_the_api_rules(catalog, tiers, message):
    from billing.admin import ChargeForm

    form = ChargeForm(
        data={
            "meter": Meter.objects.get(code="requests").pk,
            "position": 0,
            "model": "graduated",
            "free_units": "0",
            "unit_amount": "0",
            "tiers": tiers,
            "package_amount": "0",
        }
    )
    assert not form.is_valid()
    assert message in str(form.errors)
    assert Charge.objects.filter(tiers=tiers).count() == 0
