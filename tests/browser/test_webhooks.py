"""A developer registers a webhook endpoint in the portal, copies the secret shown once,
sends a test event and sees it delivered, signed so that the Standard Webhooks reference
library verifies it, in headless Chromium."""

import json

import pytest
from django.core.management import call_command

from tests.webhooks.conftest import Receiver

PASSWORD = "demo-password-123"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the receiver listens on 127.0.0.1
    server = Receiver().start()
    yield server
    server.stop()
    from webhooks.ssrf import pools

    pools.clear()


def test_developer_adds_an_endpoint_and_receives_a_signed_test_event(
    page, meters, receiver, artifacts
):
    call_command("seed_demo", "--password", PASSWORD)
    page.goto("/accounts/login/")
    page.fill("input[name=login]", "owner@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("link", name="New endpoint").click()
    page.fill("input[name=url]", receiver.url)
    page.check("input[name=environment][value=test]")
    page.get_by_role("button", name="Create endpoint").click()

    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("whsec_")
    receiver.secrets.append(secret)
    page.get_by_role("link", name="I have copied it: go to the endpoint").click()

    page.get_by_role("button", name="Send test event").click()
    row = page.locator("#attempts tbody tr").first
    assert "ping" in row.inner_text() and "200" in row.inner_text()
    page.screenshot(path=str(artifacts / "webhook-endpoint.png"), full_page=True)

    [delivery] = receiver.received
    assert delivery.verified == {secret: True}  # standardwebhooks.Webhook(secret).verify
    body = json.loads(delivery.body)
    assert body["type"] == "ping" and body["id"] == delivery.headers["webhook-id"]
