"""A new developer's first minutes, in a real browser: sign up to a first test key."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail

from common.secrets import hash_secret
from keys.models import ApiKey

PASSWORD = "a long enough passphrase 91"

pytestmark = pytest.mark.browser


def test_sign_up_to_first_key_shows_the_secret_once(page, live_server, artifacts):
    page.goto("/")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill('input[name="email"]', "ada@example.com")
    page.fill('input[name="password1"]', PASSWORD)
    page.fill('input[name="password2"]', PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Verify Your Email Address").wait_for()

    [link] = re.findall(r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body)
    page.goto(urlsplit(link).path)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/orgs/new")

    page.get_by_label("Name", exact=True).fill("Analytical Engines")
    page.get_by_role("button", name="Create organization").click()
    page.wait_for_url("**/o/analytical-engines/")

    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name", exact=True).fill("Difference app")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("heading", name="Difference app").wait_for()

    page.get_by_role("link", name="New key").click()
    page.get_by_label("Name", exact=True).fill("local development")
    page.get_by_role("button", name="Create key").click()

    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("tg_test_")
    assert page.content().count(secret) == 1
    key = ApiKey.objects.get(name="local development")
    assert key.key_hash == hash_secret(secret)
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.screenshot(path=artifacts / "key-created.png", full_page=True)

    page.get_by_role("navigation", name="Analytical Engines").get_by_role(
        "link", name="Keys"
    ).click()
    page.wait_for_url("**/o/analytical-engines/keys/")
    assert secret not in page.content()
    assert key.prefix in page.content()
    page.screenshot(path=artifacts / "key-list.png", full_page=True)

    page.set_viewport_size({"width": 375, "height": 812})
    page.goto("/o/analytical-engines/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=artifacts / "dashboard-mobile.png", full_page=True)
