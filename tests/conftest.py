"""Shared fixtures: API clients with org tokens, a second org for isolation tests."""

import os
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.factories import ApiTokenFactory, MembershipFactory, OrganizationFactory

# Playwright's sync API runs an event loop in the test thread; Django must still allow ORM
# calls from the test body.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Password hashing is deliberately slow; tests create many users and need not be secure.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Process-wide caches must not carry one test's rows into the next.
    from keys.gate_api import process_gate
    from portal.authentication import _operator_headers, _operator_tokens

    _operator_tokens.clear()
    _operator_headers.clear()
    process_gate.cache_clear()


@pytest.fixture
def org(db):
    return OrganizationFactory(slug="acme", name="Acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(slug="globex", name="Globex")


@pytest.fixture
def owner(org):
    return MembershipFactory(organization=org).user


@pytest.fixture
def org_token(org):
    return ApiTokenFactory(organization=org)


@pytest.fixture
def other_org_token(other_org):
    return ApiTokenFactory(organization=other_org)


def bearer_client(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.raw_token}")
    return client


@pytest.fixture
def api(org_token) -> APIClient:
    """An API client acting as `org` with every org scope."""
    return bearer_client(org_token)


@pytest.fixture
def other_api(other_org_token) -> APIClient:
    return bearer_client(other_org_token)


@pytest.fixture
def anonymous_api() -> APIClient:
    return APIClient()


@pytest.fixture
def meters(db):
    """The default meters. Migrations seed them, but transactional tests flush tables, so
    this puts back any that a flush removed."""
    from billing.defaults import ensure_default_meters
    from billing.models import Meter

    ensure_default_meters(Meter)
    return {meter.code: meter for meter in Meter.objects.all()}


# --- Headless Chromium (Playwright), for tests/browser and any page test that needs one ---
# Chromium comes from the system package (/usr/bin/chromium), not from Playwright's download,
# so nothing is fetched at test time; without it browser tests skip with a printed reason.
# One session-wide browser for the whole run: two Playwright instances in one process clash.
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Headless in a container: no sandbox (no user namespaces), no GPU, no calls home.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    # The copy button writes to the clipboard; localhost is a secure context, so this is real.
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (gitignored), for a person to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
