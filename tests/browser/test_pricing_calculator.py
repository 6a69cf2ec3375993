"""The pricing calculator and the billing page in a real browser: live quotes from the same
API and code as invoices, readable at 375 px."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from billing.defaults import ensure_default_meters
from billing.demo_catalog import ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.models import AddOn, Meter, Plan
from billing.subscriptions import subscription_add_addon, subscription_subscribe
from billing.templatetags.billing_tags import format_amount
from portal.audit import Actor
from portal.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.browser
SYSTEM = Actor.system("test")


@pytest.fixture
def catalog(transactional_db):
    # Transactional tests flush every table, the meters the migrations seeded included.
    ensure_default_meters(Meter)
    ensure_demo_catalog(actor=SYSTEM)


def api_quote(body: dict) -> dict:
    """What POST /api/v1/pricing/quote answers for the same input (billing.quotes)."""
    response = Client().post(reverse("api:pricing-quote"), body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_calculator_quotes_as_you_type_like_the_quote_api(page, catalog, artifacts):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto("/pricing")
    expect(page.get_by_role("heading", name="Pro", exact=True)).to_be_visible()
    assert page.get_by_role("heading", name="Enterprise").count() == 0
    page.screenshot(path=artifacts / "pricing-desktop.png", full_page=True)

    page.select_option("#calculator-plan", "pro")
    page.locator("#id_requests").press_sequentially("2500000", delay=20)
    expected = api_quote({"plan": "pro", "usage": {"requests": "2500000"}})
    assert expected["total"] == "747.00"  # 49 + 1M at 0.0004 + 1.49M at 0.0002

    total = page.locator("#quote-total")
    expect(total).to_have_attribute("data-amount", expected["total"])
    assert total.inner_text() == format_amount(Decimal(expected["total"]), "USD") == "$747.00"
    tiers = page.locator("#quote-lines .quote-tier")
    expect(tiers.filter(has_text="Up to 1,000,000")).to_have_count(1)
    expect(tiers.filter(has_text="Above 1,000,000")).to_have_count(1)
    expect(tiers.filter(has_text="Free allowance: 10,000")).to_have_count(1)
    assert "plan=pro" in page.url and "requests=2500000" in page.url  # shareable
    page.locator("#calculator").screenshot(path=artifacts / "pricing-calculator.png")

    # Another plan re-quotes at once, and shows only the meters it charges.
    page.select_option("#calculator-plan", "business")
    expected = api_quote({"plan": "business", "usage": {"requests": "2500000"}})
    expect(total).to_have_attribute("data-amount", expected["total"])
    page.select_option("#calculator-plan", "free")
    expect(page.locator("#calculator-no-meters")).to_be_visible()
    expect(page.locator("#id_requests")).to_be_hidden()
    expect(total).to_have_attribute("data-amount", "0.00")
    assert errors == []


def test_calculator_shows_the_apis_error_next_to_the_field(page, catalog):
    page.goto("/pricing?plan=pro")
    page.locator("#id_requests").fill("-5")
    expect(page.locator("[data-live-error]")).to_have_text("Must not be negative.")
    expect(page.locator("#quote-error")).to_be_visible()
    page.locator("#id_requests").fill("1000")
    expect(page.locator("[data-live-error]")).to_have_count(0)
    expect(page.locator("#quote-total")).to_have_attribute("data-amount", "49.00")


def test_pricing_page_fits_a_phone(page, catalog, artifacts):
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto("/pricing?plan=pro&requests=2500000")
    assert fits(page, 375)
    page.screenshot(path=artifacts / "pricing-mobile.png", full_page=True)
    page.goto("/")
    page.get_by_role("link", name="See pricing").click()
    page.wait_for_url("**/pricing")
    page.goto("/")
    assert fits(page, 375)
    page.screenshot(path=artifacts / "landing-mobile.png", full_page=True)


def test_billing_page_for_a_subscriber(page, live_server, catalog, artifacts):
    org = OrganizationFactory(name="Analytical Engines", slug="analytical-engines")
    user = MembershipFactory(organization=org, role=Role.OWNER).user
    subscription = subscription_subscribe(
        actor=SYSTEM,
        organization=org,
        plan=Plan.objects.get(code="pro"),
        now=timezone.now() - timedelta(days=10),
    )
    subscription_add_addon(
        actor=SYSTEM, subscription=subscription, addon=AddOn.objects.get(code="priority-support")
    )
    usage_ingest(
        events=[
            {"id": "r", "meter": "requests", "customer": org.slug, "quantity": "4200000"},
            {"id": "p", "meter": "records_processed", "customer": org.slug, "quantity": "52000"},
        ]
    )
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )

    page.goto(f"/o/{org.slug}/billing/")
    expect(page.get_by_role("heading", name="Billing")).to_be_visible()
    expect(page.locator("#preview-total-forecast")).to_be_visible()
    expect(page.locator('[data-feature="sso"]')).to_be_visible()
    page.screenshot(path=artifacts / "billing-desktop.png", full_page=True)

    page.get_by_label("Meter").select_option("records_processed")
    page.get_by_label("How many more units").fill("2000000")
    page.get_by_role("button", name="Estimate").click()
    expect(page.locator("#estimate-cost")).to_have_text("$5,000.00")

    page.get_by_role("link", name="Switch to Business").click()
    expect(page.locator("#change-difference")).to_be_visible()
    page.screenshot(path=artifacts / "billing-change-plan.png", full_page=True)

    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"/o/{org.slug}/billing/")
    assert fits(page, 375)
    page.screenshot(path=artifacts / "billing-mobile.png", full_page=True)
    page.goto(f"/o/{org.slug}/")
    assert fits(page, 375)
    page.screenshot(path=artifacts / "dashboard-prompt-mobile.png", full_page=True)


def test_a_free_org_at_its_quota_subscribes_from_the_prompt(page, live_server, catalog, artifacts):
    org = OrganizationFactory(name="Difference Engines", slug="difference-engines")
    user = MembershipFactory(organization=org, role=Role.BILLING).user
    usage_ingest(
        events=[{"id": "r", "meter": "requests", "customer": org.slug, "quantity": "10000"}]
    )
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )

    page.goto(f"/o/{org.slug}/billing/")
    expect(page.get_by_role("heading", name="Free plan")).to_be_visible()
    prompt = page.locator('[data-quota="requests"]')
    expect(prompt).to_have_attribute("data-level", "100")
    page.screenshot(path=artifacts / "billing-free.png", full_page=True)

    prompt.get_by_role("link", name="Upgrade to Pro").click()
    expect(page.locator("#total-after")).to_have_attribute("data-amount", "49.00")
    page.screenshot(path=artifacts / "billing-subscribe.png", full_page=True)
    page.get_by_role("button", name="Subscribe to Pro").click()
    expect(page.locator("#subscription-status")).to_have_text("Trialing")
    expect(page.locator(".message-success")).to_contain_text("You are on Pro")
    # Pro's quota is 5M: the prompt is gone.
    expect(page.locator('[data-quota="requests"]')).to_have_count(0)
