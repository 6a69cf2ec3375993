"""A partner lists an app, the operator approves it in Django admin, a customer installs
it from the gallery through the OAuth consent page, and the app's token passes the gate;
uninstalling stops it. Headless Chromium, on the demo data `make run` seeds, with a tiny
partner app (tests/marketplace/partner_app.py) doing its side of the PKCE flow."""

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from keys.gate import VerifyInput
from marketplace.models import App, Install
from tests.keys.conftest import make_gate
from tests.marketplace.partner_app import PartnerApp
from tests.marketplace.test_apps import image_bytes

PASSWORD = "demo-password-123"


@pytest.fixture
def partner_app(live_server):
    app = PartnerApp(live_server.url).start()
    yield app
    app.stop()


def log_in(page, email: str) -> None:
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def call(token: str):
    return make_gate().decide(VerifyInput(key=token, method="GET", path="/v1/documents/1"))


def test_partner_lists_operator_approves_customer_installs(page, meters, partner_app, artifacts):
    call_command("seed_demo", "--password", PASSWORD)

    # The partner creates the app and submits its listing.
    log_in(page, "owner@docsync.test")
    page.get_by_role("link", name="Partner program").click()
    page.get_by_role("link", name="New app").click()
    page.fill("input[name=name]", "DocSync")
    page.fill("input[name=summary]", "Sync documents with your drive.")
    page.fill("textarea[name=description]", "**DocSync** keeps every document in sync.")
    page.check("input[name=categories][value=documents]")
    page.check("input[name=scopes][value=read]")
    page.check("input[name=scopes][value=write]")
    page.fill("textarea[name=redirect_uris]", partner_app.redirect_uri)
    page.fill("input[name=support_url]", "https://docsync.example.com/support")
    page.fill("input[name=privacy_url]", "https://docsync.example.com/privacy")
    page.fill("input[name=install_url]", partner_app.install_url)
    page.get_by_role("button", name="Create app").click()
    page.set_input_files(
        "input[name=logo]",
        {"name": "logo.png", "mimeType": "image/png", "buffer": image_bytes()},
    )
    page.get_by_role("button", name="Upload logo").click()
    expect(page.locator("img[alt='DocSync logo']")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("[data-app-state]")).to_have_attribute("data-app-state", "in_review")
    # Not in the gallery before the operator's review.
    assert App.objects.get(name="DocSync").state == App.State.IN_REVIEW
    page.goto("/marketplace/")
    assert page.get_by_role("link", name="DocSync").count() == 0

    # Its OAuth credentials: the client id, and a secret shown once.
    page.go_back()
    page.get_by_role("link", name="OAuth credentials").click()
    partner_app.client_id = page.locator("[data-client-id]").inner_text()
    page.click("[data-reset-secret]")
    expect(page.locator("[data-client-secret]")).to_be_visible()
    partner_app.client_secret = page.locator("[data-client-secret]").inner_text()

    # The operator lists it from Django admin.
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("input[name=username]", "admin@tollgate.local")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.goto("/admin/marketplace/app/")
    page.get_by_role("link", name="Marketplace health").wait_for()
    row = page.locator("#result_list tbody tr", has_text="DocSync")
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "app_listed")
    page.fill("input[name=note]", "Welcome to the marketplace.")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("1 app(s): List.")

    # A customer finds it in the gallery and installs it into a project.
    log_in(page, "owner@acme.test")
    page.goto("/marketplace/")
    page.get_by_role("link", name="DocSync").first.click()
    page.get_by_role("link", name="Install DocSync").click()
    page.wait_for_url("**/o/authorize/**")  # the partner app started the flow
    asked = page.locator("[data-asked-scopes] [data-scope]")
    assert sorted(asked.evaluate_all("items => items.map(i => i.dataset.scope)")) == [
        "read",
        "write",
    ]
    page.select_option("select[name=project]", label="Acme Corp / Demo app")
    page.screenshot(path=str(artifacts / "marketplace-consent.png"), full_page=True)
    page.get_by_role("button", name="Allow and install").click()
    page.wait_for_url(f"{partner_app.url}/callback**")
    expect(page.locator("#result")).to_contain_text("Connected to Tollgate with scope:")
    assert partner_app.errors == []
    [tokens] = partner_app.tokens
    assert set(tokens["scope"].split()) <= {"read", "write"} and "read" in tokens["scope"]

    # The app calls the API with its token: the gate lets it through, as acme's call.
    decision = call(tokens["access_token"])
    assert decision.allowed, decision.code
    install = Install.objects.get(app__name="DocSync", uninstalled_at__isnull=True)
    assert install.organization.slug == "acme" and install.project.name == "Demo app"

    # Uninstalled from the portal, the token stops at once.
    page.goto("/o/acme/apps/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Uninstall").click()
    page.get_by_text("No apps installed.").wait_for()
    assert call(tokens["access_token"]).code == "key_revoked"
