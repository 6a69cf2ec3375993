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


# --- Payments: the fake Stripe server and open invoices (tests/billing/fake_stripe.py) ------
@pytest.fixture(scope="session")
def fake_stripe_server():
    """One local fake Stripe HTTP server for the whole run."""
    from tests.billing.fake_stripe import FakeStripe

    server = FakeStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_stripe(fake_stripe_server, settings):
    """Stripe configured, pointing at the fake (emptied for each test)."""
    from tests.billing.fake_stripe import WEBHOOK_SECRET

    fake_stripe_server.reset()
    settings.STRIPE_SECRET_KEY = fake_stripe_server.api_key
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = fake_stripe_server.url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    settings.DUNNING_RETRY_DAYS = [1, 3, 5, 7]
    return fake_stripe_server


@pytest.fixture
def no_stripe(settings):
    """A Tollgate without Stripe keys: invoices are collected manually."""
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # were a call made, it would fail here


@pytest.fixture
def make_open_invoice(meters):
    """Makes an invoice as finalization leaves it (open, numbered, issued), with ORM rows
    only, on a Pro subscription of the given org: `make_open_invoice(org, total="49.00")`."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from billing.demo_catalog import ensure_demo_catalog
    from billing.models import Invoice, Plan, Subscription
    from billing.subscriptions import subscription_current, subscription_subscribe
    from portal.audit import Actor

    ensure_demo_catalog(actor=Actor.system("test"))
    Plan.objects.filter(code="pro").update(trial_days=0)
    made = iter(range(1, 10_000))

    def make(organization, total="49.00", *, currency="USD", **fields) -> Invoice:
        subscription: Subscription = subscription_current(
            organization=organization
        ) or subscription_subscribe(
            actor=Actor.system("test"),
            organization=organization,
            plan=Plan.objects.get(code="pro"),
        )
        number = next(made)
        now = timezone.now()
        start = subscription.started_at - timedelta(days=31 * number)
        fields.setdefault("status", Invoice.Status.OPEN)
        return Invoice.objects.create(
            organization=organization,
            subscription=subscription,
            number=f"INV-T{organization.slug[:6].upper()}-{number:04d}",
            currency=currency,
            period_start=start,
            period_end=start + timedelta(days=31),
            plan="pro",
            plan_version=1,
            usage_measured_at=now,
            subtotal=Decimal(total),
            total=Decimal(total),
            finalize_after=now,
            issued_at=now,
            due_at=now + timedelta(days=14),
            **fields,
        )

    return make
