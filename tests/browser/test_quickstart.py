"""Issue #8's measure, in a real browser: a new developer signs up, creates a key, copies the
quickstart's curl command (carrying their own key), runs it against the sandbox, and sees
the dashboard's checklist tick — the time to first success is on the page."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail

from billing.demo_catalog import ensure_demo_catalog
from devdocs.models import OnboardingMilestone
from keys.services import api_version_create
from portal.audit import Actor

PASSWORD = "a long enough passphrase 91"
DOCUMENTS_API = Path(settings.BASE_DIR) / "docs" / "examples" / "documents_api.json"

pytestmark = pytest.mark.browser


@pytest.fixture
def documents_api(meters):
    actor = Actor.system("test")
    ensure_demo_catalog(actor=actor)
    return api_version_create(
        actor=actor,
        product_code="documents",
        version="v1",
        document=json.loads(DOCUMENTS_API.read_text()),
    )


def _sign_up_to_a_test_key(page) -> str:
    page.goto("/")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill('input[name="email"]', "grace@example.com")
    page.fill('input[name="password1"]', PASSWORD)
    page.fill('input[name="password2"]', PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Verify Your Email Address").wait_for()
    [link] = re.findall(r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body)
    page.goto(urlsplit(link).path)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/orgs/new")
    page.get_by_label("Name", exact=True).fill("Compilers Inc")
    page.get_by_role("button", name="Create organization").click()
    page.wait_for_url("**/o/compilers-inc/")
    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name", exact=True).fill("First app")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("link", name="New key").click()
    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create key").click()
    return page.locator("#new-secret").inner_text().strip()


def test_quickstart_from_sign_up_to_a_ticked_first_sandbox_call(
    page, live_server, artifacts, documents_api
):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed: the copied command cannot be run")
    secret = _sign_up_to_a_test_key(page)
    assert secret.startswith("tg_test_")

    page.goto("/o/compilers-inc/")
    checklist = page.locator("section.onboarding")
    assert checklist.locator('[data-step="key_created"]').get_attribute("data-done") == "true"
    assert (
        checklist.locator('[data-step="first_sandbox_call"]').get_attribute("data-done") == "false"
    )
    checklist.get_by_role("link", name="Make your first sandbox call").click()
    page.wait_for_url("**/docs/guides/get-started/")

    # The first curl sample carries the reader's own key and this deployment's sandbox.
    block = page.locator("pre", has_text="curl").first
    command = block.inner_text().strip()
    assert secret in command
    assert f"{live_server.url}/sandbox/documents/v1/documents" in command
    page.locator(f'button[data-copy-target="{block.get_attribute("id")}"]').click()
    copied = page.evaluate("navigator.clipboard.readText()").strip()
    assert copied == command
    page.screenshot(path=artifacts / "quickstart-guide.png", full_page=True)

    # Run what was copied, as the reader would in a terminal.
    ran = subprocess.run(
        ["/bin/sh", "-c", copied],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(Path(curl).parent)},
    )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert isinstance(answer["data"], list)

    page.goto("/o/compilers-inc/")
    step = page.locator('section.onboarding [data-step="first_sandbox_call"]')
    assert step.get_attribute("data-done") == "true"
    took = page.locator("[data-time-to-first-success]")
    assert "First successful call" in took.inner_text()
    seconds = int(took.get_attribute("data-time-to-first-success"))
    assert seconds >= 0
    milestone = OnboardingMilestone.objects.get(
        organization__slug="compilers-inc", step=OnboardingMilestone.Step.FIRST_SANDBOX_CALL
    )
    assert milestone.reached_at is not None
    page.screenshot(path=artifacts / "quickstart-checklist.png", full_page=True)
    print(f"time to first success in this run: {seconds} s")
