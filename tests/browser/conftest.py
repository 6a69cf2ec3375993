"""Browser tests: the shared Chromium fixtures (`browser`, `page`, `artifacts`) are in
tests/conftest.py, so page tests elsewhere use the same session-wide browser."""

import pytest

from tests.conftest import CHROMIUM, LAUNCH_ARGS  # noqa: F401 -- imported by page tests


@pytest.fixture(autouse=True)
def _no_account_rate_limits(settings):
    # allauth's counters live in the cache (Redis) and outlive a test: a second run within
    # minutes would find the verification e-mail for the same address already "sent".
    settings.ACCOUNT_RATE_LIMITS = False
