"""The pricing pages: /pricing and its calculator, an org's billing page, plan changes,
cancellation, add-ons, estimates, roles, isolation and the upgrade prompts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from billing import entitlements
from billing.catalog import plan_version_create
from billing.demo_catalog import ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.models import Plan, Subscription, SubscriptionAddOn, SubscriptionPhase
from billing.quotes import Segment, build_quote
from billing.subscriptions import (
    plan_migrate_subscribers,
    subscription_current,
    subscription_estimate,
    subscription_preview_change,
    subscription_subscribe,
)
from billing.templatetags.billing_tags import format_amount
from billing.upgrades import feature_upgrade, upgrade_prompts
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.factories import MembershipFactory

MANAGERS = [Role.OWNER, Role.ADMIN, Role.BILLING]
LOOKERS = [Role.DEVELOPER, Role.VIEWER]


@pytest.fixture(autouse=True)
def _invalidate_entitlements_at_once(monkeypatch):
    # Services drop the cached entitlements after commit; a test's transaction never
    # commits, so drop them at once (the cache is the real Redis, shared across tests).
    monkeypatch.setattr(
        entitlements,
        "invalidate",
        lambda organization_id: cache.delete(f"entitlements:{organization_id}"),
    )


@pytest.fixture
def catalog(meters):
    ensure_demo_catalog(actor=Actor.system("test"))
    return {plan.code: plan for plan in Plan.objects.all()}


@pytest.fixture
def member(client, org):
    def log_in(role=Role.OWNER, organization=None):
        membership = MembershipFactory(organization=organization or org, role=role)
        client.force_login(membership.user)
        return membership

    return log_in


def subscribe(org, plan, days_ago=0):
    """Subscribed `days_ago` (usage recorded now then counts in the current period)."""
    return subscription_subscribe(
        actor=Actor.system("test"),
        organization=org,
        plan=plan,
        now=timezone.now() - timedelta(days=days_ago),
    )


def use(org, meter, quantity, event_id="e"):
    result = usage_ingest(
        events=[{"id": event_id, "meter": meter, "customer": org.slug, "quantity": str(quantity)}]
    )
    assert result.accepted == 1, result.rejected


def billing_url(org, name="overview", **kwargs):
    return reverse(f"org_billing:{name}", kwargs={"slug": org.slug, **kwargs})


# --- /pricing ---------------------------------------------------------------------------
def test_pricing_page_shows_public_plans_only(client, catalog):
    response = client.get("/pricing")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("Free", "Pro", "Business"):
        assert f"<h2>{name}</h2>" in html
    assert "Enterprise" not in html and "enterprise" not in html
    assert "$49" in html and "$499" in html
    assert "14-day free trial" in html
    assert "5,000,000 API requests per month" in html
    assert "Webhooks" in html and "Single sign-on (SSO)" in html
    assert reverse("api:pricing-quote") in html  # where the calculator posts
    assert reverse("account_signup") in html


def test_pricing_page_works_for_logged_in_members(client, catalog, member, org):
    member(Role.VIEWER)
    response = client.get("/pricing")
    assert response.status_code == 200
    assert billing_url(org) in response.content.decode()


def test_landing_page_and_top_bar_link_to_pricing(client, db):
    html = client.get("/").content.decode()
    assert html.count('href="/pricing"') >= 2


def test_calculator_without_javascript_prices_like_the_quote_api(client, catalog):
    response = client.get("/pricing", {"plan": "business", "requests": "12000000"})
    html = response.content.decode()
    api = client.post(
        reverse("api:pricing-quote"),
        {"plan": "business", "usage": {"requests": "12000000"}},
        content_type="application/json",
    ).json()
    # 499 + (12M - 100k free): 10M at 0.0003 + 1.9M at 0.00015
    assert api["total"] == "3784.00"
    assert f'id="quote-total" data-amount="{api["total"]}">$3,784.00<' in html
    assert "Up to 10,000,000: 10,000,000 \N{MULTIPLICATION SIGN} $0.0003" in html
    assert "Above 10,000,000: 1,900,000 \N{MULTIPLICATION SIGN} $0.00015" in html
    assert "Free allowance: 100,000" in html


def test_calculator_does_not_price_private_plans(client, catalog):
    response = client.get("/pricing", {"plan": "enterprise", "requests": "1000"})
    html = response.content.decode()
    assert "Select a valid choice" in html
    assert "2,500" not in html and "Enterprise" not in html


@pytest.mark.parametrize("bad", ["-5", "lots"])
def test_calculator_rejects_bad_quantities(client, catalog, bad):
    response = client.get("/pricing", {"plan": "pro", "requests": bad})
    assert response.status_code == 200
    html = response.content.decode()
    assert "field-invalid" in html
    assert 'id="quote-total"' in html and "Fix the highlighted fields" in html


# --- The billing page, by role -------------------------------------------------------------
@pytest.mark.parametrize("role", MANAGERS + LOOKERS)
def test_everyone_sees_the_billing_page_only_managers_see_the_buttons(
    client, catalog, member, org, role
):
    subscribe(org, catalog["pro"])
    member(role)
    response = client.get(billing_url(org))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'Pro <span class="badge">v1</span>' in html
    assert "This period&#x27;s bill" in html or "This period's bill" in html
    buttons = [
        billing_url(org, "plan_change", code="business"),
        billing_url(org, "cancel"),
        billing_url(org, "addon_add"),
    ]
    for url in buttons:
        assert (url in html) is (role in MANAGERS), url


@pytest.mark.parametrize("role", LOOKERS)
def test_lookers_get_403_on_every_change(client, catalog, member, org, role):
    subscribe(org, catalog["pro"])
    member(role)
    phases = SubscriptionPhase.objects.count()
    for url, body in [
        (billing_url(org, "plan_change", code="business"), {}),
        (billing_url(org, "cancel"), {}),
        (billing_url(org, "addon_add"), {"addon-addon": "priority-support", "addon-quantity": "1"}),
    ]:
        assert client.post(url, body).status_code == 403
    assert client.get(billing_url(org, "plan_change", code="business")).status_code == 403
    assert SubscriptionPhase.objects.count() == phases
    assert not SubscriptionAddOn.objects.exists()
    assert not subscription_current(organization=org).cancel_at_period_end


def test_another_orgs_member_gets_404_everywhere_and_changes_nothing(
    client, catalog, member, org, other_org
):
    subscribe(org, catalog["pro"])
    member(Role.OWNER, organization=other_org)
    before = list(AuditLogEntry.objects.values_list("id", flat=True))
    gets = [
        billing_url(org),
        billing_url(org) + "?estimate-meter=requests&estimate-quantity=5",
        billing_url(org, "plan_change", code="business"),
        billing_url(org, "cancel"),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in [*gets[2:], billing_url(org, "addon_add")]:
        assert client.post(url, {"addon-addon": "priority-support"}).status_code == 404, url
    subscription = subscription_current(organization=org)
    assert subscription.phases.count() == 1 and not subscription.cancel_at_period_end
    assert not subscription.addons.exists()
    assert list(AuditLogEntry.objects.values_list("id", flat=True)) == before


def test_anonymous_visitors_are_sent_to_log_in(client, catalog, org):
    response = client.get(billing_url(org))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_private_and_unknown_plans_are_not_offered(client, catalog, member, org):
    member(Role.OWNER)
    for code in ("enterprise", "nope"):
        assert client.get(billing_url(org, "plan_change", code=code)).status_code == 404
        assert client.post(billing_url(org, "plan_change", code=code)).status_code == 404
    assert not Subscription.objects.filter(organization=org).exists()


# --- Free plan and subscribing ---------------------------------------------------------------
def test_an_org_without_subscription_is_on_free_and_subscribes(client, catalog, member, org):
    membership = member(Role.BILLING)
    html = client.get(billing_url(org)).content.decode()
    assert "Free plan" in html
    assert billing_url(org, "plan_change", code="pro") in html

    confirm = client.get(billing_url(org, "plan_change", code="pro"))
    assert confirm.status_code == 200
    assert 'id="total-after" data-amount="49.00"' in confirm.content.decode()
    assert not Subscription.objects.filter(organization=org).exists()

    response = client.post(billing_url(org, "plan_change", code="pro"), {"coupon": "launch20"})
    assert response.status_code == 302 and response.url == billing_url(org)
    subscription = subscription_current(organization=org)
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.coupon.code == "launch20"
    assert subscription.phases.get().plan_version.plan.code == "pro"
    entry = AuditLogEntry.objects.get(action="subscription.created")
    assert entry.actor_user == membership.user and entry.organization_id == org.id

    html = client.get(billing_url(org)).content.decode()
    assert 'id="subscription-status">Trialing<' in html
    assert "launch20" in html


def test_an_unknown_coupon_is_a_field_error_and_saves_nothing(client, catalog, member, org):
    member(Role.OWNER)
    response = client.post(billing_url(org, "plan_change", code="pro"), {"coupon": "free-money"})
    assert response.status_code == 200
    assert "No active coupon" in response.content.decode()
    assert not Subscription.objects.filter(organization=org).exists()


# --- Changing plan -------------------------------------------------------------------------
@pytest.mark.usefixtures("no_trials")
def test_plan_change_shows_the_prorated_difference_and_saves_only_on_post(
    client, catalog, member, org
):
    subscribe(org, catalog["pro"], days_ago=10)
    use(org, "requests", 200_000)
    membership = member(Role.ADMIN)
    subscription = subscription_current(organization=org)
    phases = list(SubscriptionPhase.objects.values_list("id", "ends_at"))
    audit = AuditLogEntry.objects.count()

    response = client.get(billing_url(org, "plan_change", code="business"))
    assert response.status_code == 200
    html = response.content.decode()
    before, after = subscription_preview_change(subscription=subscription, plan=catalog["business"])
    assert after.total > before.total
    # The rest of the period is forecast under Business at this period's pace.
    [pro_usage, business_usage] = [line for line in after.lines if line.meter == "requests"]
    assert pro_usage.quantity == 200_000 and business_usage.quantity > 200_000
    assert f'id="total-before" data-amount="{before.total}"' in html
    assert f'id="total-after" data-amount="{after.total}"' in html
    assert f'data-amount="{after.total - before.total}"' in html
    assert list(SubscriptionPhase.objects.values_list("id", "ends_at")) == phases
    assert AuditLogEntry.objects.count() == audit

    response = client.post(billing_url(org, "plan_change", code="business"))
    assert response.status_code == 302
    phases = list(subscription.phases.order_by("starts_at"))
    assert [p.plan_version.plan.code for p in phases] == ["pro", "business"]
    assert phases[0].ends_at == phases[1].starts_at
    entry = AuditLogEntry.objects.get(action="subscription.plan_changed")
    assert entry.actor_user == membership.user
    assert entitlements.entitlements_for(org.id)["plan"] == "business"


def test_choosing_the_current_plan_is_refused_with_a_message(client, catalog, member, org):
    subscribe(org, catalog["pro"])
    member(Role.OWNER)
    response = client.post(billing_url(org, "plan_change", code="pro"), follow=True)
    assert "Already subscribed to Pro" in response.content.decode()
    assert subscription_current(organization=org).phases.count() == 1


def test_a_scheduled_migration_is_announced(client, catalog, member, org):
    subscription = subscribe(org, catalog["pro"])
    version = plan_version_create(
        actor=Actor.system("test"),
        plan=catalog["pro"],
        body={"base_fee": "59.00", "entitlements": {"features": {"webhooks": True}}},
    )
    assert plan_migrate_subscribers(actor=Actor.system("test"), version=version) == 1
    member(Role.VIEWER)
    html = client.get(billing_url(org)).content.decode()
    day = subscription.current_period_end.strftime("%d %b %Y").lstrip("0")
    assert f"Your plan moves to Pro v2 on {day}." in html


# --- Cancel, add-ons, estimates ----------------------------------------------------------------
def test_cancel_asks_first_then_cancels_at_period_end(client, catalog, member, org):
    subscribe(org, catalog["pro"])
    member(Role.OWNER)
    confirm = client.get(billing_url(org, "cancel"))
    assert confirm.status_code == 200 and "Cancel at period end" in confirm.content.decode()
    assert not subscription_current(organization=org).cancel_at_period_end

    response = client.post(billing_url(org, "cancel"), follow=True)
    assert subscription_current(organization=org).cancel_at_period_end
    assert 'id="cancel-state"' in response.content.decode()
    assert AuditLogEntry.objects.filter(action="subscription.cancel_scheduled").count() == 1


def test_cancel_without_subscription_says_there_is_nothing_to_cancel(client, catalog, member, org):
    member(Role.OWNER)
    response = client.post(billing_url(org, "cancel"), follow=True)
    assert "nothing to cancel" in response.content.decode()
    assert not Subscription.objects.exists()


def test_adding_an_add_on(client, catalog, member, org):
    subscribe(org, catalog["pro"])
    member(Role.BILLING)
    response = client.post(
        billing_url(org, "addon_add"), {"addon-addon": "quota-pack-1m", "addon-quantity": "2"}
    )
    assert response.status_code == 302
    item = SubscriptionAddOn.objects.get()
    assert (item.addon.code, item.quantity) == ("quota-pack-1m", 2)
    assert entitlements.entitlements_for(org.id)["quotas"][0]["limit"] == "7000000"
    html = client.get(billing_url(org)).content.decode()
    assert "Extra 1M requests quota \N{MULTIPLICATION SIGN} 2" in html
    assert AuditLogEntry.objects.filter(action="subscription.addon_added").count() == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"addon-addon": "quota-pack-1m", "addon-quantity": "0"}, "greater than or equal to 1"),
        ({"addon-addon": "unobtainium", "addon-quantity": "1"}, "Select a valid choice"),
    ],
)
def test_a_bad_add_on_form_shows_errors(client, catalog, member, org, body, error):
    subscribe(org, catalog["pro"])
    member(Role.OWNER)
    response = client.post(billing_url(org, "addon_add"), body)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not SubscriptionAddOn.objects.exists()


@pytest.mark.usefixtures("no_trials")
def test_estimate_shows_what_more_usage_would_add(client, catalog, member, org):
    subscription = subscribe(org, catalog["pro"])
    use(org, "requests", 5_000)
    member(Role.VIEWER)
    response = client.get(
        billing_url(org), {"estimate-meter": "requests", "estimate-quantity": "2000000"}
    )
    html = response.content.decode()
    estimate = subscription_estimate(
        subscription=subscription,
        meter=catalog["pro"].current_version().charges.get(meter__code="requests").meter,
        quantity=Decimal(2_000_000),
    )
    # 2,005,000 - 10,000 free: 1M at 0.0004 + 995,000 at 0.0002
    assert estimate.difference == Decimal("599.00")
    assert f'id="estimate-cost" data-amount="{estimate.difference}">$599.00<' in html


@pytest.mark.parametrize(
    ("quantity", "error"),
    [("-1", "greater than or equal to 0"), ("two million", "Enter a number"), ("", "required")],
)
def test_estimate_with_bad_input_shows_an_error(client, catalog, member, org, quantity, error):
    subscribe(org, catalog["pro"])
    member(Role.OWNER)
    response = client.get(
        billing_url(org), {"estimate-meter": "requests", "estimate-quantity": quantity}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert error in html and 'id="estimate-cost"' not in html


# --- Upgrade prompts ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("used", "level"), [(7_999, None), (8_000, 80), (9_999, 80), (10_000, 100), (12_000, 100)]
)
def test_free_quota_prompts_at_80_and_100_percent(client, catalog, member, org, used, level):
    use(org, "requests", used)
    [prompt] = upgrade_prompts(org) or [None]
    if level is None:
        assert prompt is None
    else:
        assert prompt.level == level
        assert (prompt.offer.plan.code, prompt.offer_limit) == ("pro", Decimal(5_000_000))
        assert prompt.offer.base_fee_difference == Decimal(49)

    member(Role.DEVELOPER)
    for url in (
        reverse("portal:dashboard", kwargs={"slug": org.slug}),
        reverse("billing:usage", kwargs={"slug": org.slug}),
    ):
        html = client.get(url).content.decode()
        shown = 'data-quota="requests"' in html
        assert shown is (level is not None), url
        if level:
            assert f'data-level="{level}"' in html and "+$49.00 per month" in html
            # Only billing managers get a button straight to the plan change.
            assert billing_url(org, "plan_change", code="pro") not in html


def test_quota_prompts_use_the_subscription_period_and_the_next_bigger_plan(
    client, catalog, member, org
):
    subscribe(org, catalog["pro"])
    use(org, "requests", 4_000_000)
    [prompt] = upgrade_prompts(org)
    assert (prompt.level, prompt.offer.plan.code) == (80, "business")
    assert prompt.offer.base_fee_difference == Decimal(450)
    member(Role.OWNER)
    html = client.get(reverse("portal:dashboard", kwargs={"slug": org.slug})).content.decode()
    assert billing_url(org, "plan_change", code="business") in html


def test_feature_upgrade_names_the_cheapest_plan_with_the_feature(catalog, org):
    offer = feature_upgrade(org, "webhooks")
    assert (offer.plan.code, offer.base_fee_difference) == ("pro", Decimal(49))
    assert feature_upgrade(org, "sso").plan.code == "business"
    subscribe(org, catalog["pro"])
    assert feature_upgrade(org, "webhooks") is None
    assert feature_upgrade(org, "sso").base_fee_difference == Decimal(450)
    assert feature_upgrade(org, "teleportation") is None


def test_billing_page_offers_the_features_the_plan_lacks(client, catalog, member, org):
    member(Role.OWNER)
    html = client.get(billing_url(org)).content.decode()
    for feature in ("webhooks", "analytics", "sso", "audit_log_export"):
        assert f'data-feature="{feature}"' in html
    subscribe(org, catalog["pro"])
    html = client.get(billing_url(org)).content.decode()
    assert 'data-feature="webhooks"' not in html and 'data-feature="sso"' in html
    assert "+$450.00" in html


def test_amounts_are_formatted_with_the_currency(db):
    assert format_amount(Decimal("1234.5"), "USD") == "$1,234.50"
    assert format_amount(Decimal("-0.004"), "USD") == "$0.00"
    assert format_amount(Decimal("49.00"), "USD", short=True) == "$49"
    assert format_amount(Decimal("0.00015"), "USD", exact=True) == "$0.00015"
    assert format_amount(Decimal("1500"), "JPY") == "¥1,500"
    assert format_amount(Decimal("12.5"), "CHF") == "12.50 CHF"


def test_the_quote_on_the_confirmation_page_is_the_quote_engines(client, catalog, member, org):
    member(Role.OWNER)
    html = client.get(billing_url(org, "plan_change", code="business")).content.decode()
    quote = build_quote(segments=[Segment(version=catalog["business"].current_version(), usage={})])
    assert f'data-amount="{quote.total}"' in html
