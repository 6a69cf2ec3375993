"""Fixtures for metering tests: an operator token with usage:write and the seeded meters."""

import pytest

from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory


@pytest.fixture
def operator_token(db):
    return ApiTokenFactory(kind="operator", organization=None, scopes=["usage:write"])


@pytest.fixture
def operator_api(operator_token):
    return bearer_client(operator_token)


@pytest.fixture
def admin_api(db):
    return bearer_client(ApiTokenFactory(kind="operator", organization=None, scopes=["admin"]))


@pytest.fixture(params=["single-statement", "portable"])
def store_path(request, monkeypatch):
    """Runs a test through both ledger writers: PostgreSQL's one-statement path and the
    portable path SQLite uses, so the embedded default stores exactly what production does."""
    import billing.ingest.storage

    monkeypatch.setattr(billing.ingest.storage, "PORTABLE_SQL_ONLY", request.param == "portable")
    return request.param


@pytest.fixture
def no_trials(request, db):
    """For tests about money rather than trials: plans subscribed to start billing at once
    (a trial's time is free, which would change every figure they check). Runs after the
    test module's `catalog` fixture, which creates the plans."""
    from billing.models import Plan

    plans = request.getfixturevalue("catalog")
    Plan.objects.update(trial_days=0)
    for plan in (plans or {}).values() if isinstance(plans, dict) else ():
        plan.trial_days = 0  # the module's own copies, if its fixture hands them out
