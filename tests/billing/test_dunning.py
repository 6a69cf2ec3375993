"""Dunning: declined payments retried on the DUNNING_RETRY_DAYS schedule, a notice each time,
the org past due after the last retry (the gate refuses its live keys with
payment_past_due), and access back once the unpaid invoices are paid."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing import payments
from billing.demo_catalog import ensure_demo_catalog
from billing.models import BillingProfile, Invoice
from billing.tasks import run_dunning
from common.orgflags import PAYMENT_PAST_DUE, flag_clear, flags_read
from common.redis import get_redis
from keys.services import api_version_create
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.billing.fake_stripe import DECLINED, GOOD_CARD
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.keys.conftest import call, make_gate
from tests.keys.test_products import DOCUMENT

SYSTEM = Actor.system("test")
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _clean_flag(org):
    """Redis outlives the test's transaction: leave no flag behind for the next test."""
    yield
    flag_clear(get_redis(), org.pk, PAYMENT_PAST_DUE)


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Runs a step and what it queued for after commit (mail, Redis flags, charge tasks)."""

    def run_step(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return run_step


def save_card(org, payment_method: str) -> None:
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_save(
        actor=SYSTEM, organization=org, customer_id=customer_id, payment_method_id=payment_method
    )


def first_attempt_at(invoice: Invoice):
    return invoice.attempts.get(number=1).attempted_at


def exhaust(run, invoice: Invoice) -> None:
    """Finalizes the invoice on a declining card and runs dunning through every retry."""
    run(payments.on_invoice_finalized, invoice.pk)
    start = first_attempt_at(invoice)
    for days in (1, 3, 5, 7):
        run(payments.dunning_run, now=start + timedelta(days=days) + MINUTE)


def test_a_declined_payment_is_retried_on_schedule_then_the_org_is_past_due(
    org, owner, fake_stripe, make_open_invoice, run
):
    save_card(org, DECLINED)
    invoice = make_open_invoice(org, "49.00")
    run(payments.on_invoice_finalized, invoice.pk)
    start = first_attempt_at(invoice)
    invoice.refresh_from_db()
    assert invoice.next_payment_attempt_at == start + timedelta(days=1)

    # Not due yet: nothing happens.
    assert run(payments.dunning_run, now=start + timedelta(days=1) - MINUTE) == 0
    schedule = []
    for days in (1, 3, 5, 7):
        assert run(payments.dunning_run, now=start + timedelta(days=days) + MINUTE) == 1
        invoice.refresh_from_db()
        schedule.append(invoice.next_payment_attempt_at)
        profile = BillingProfile.objects.get(organization=org)
        if days < 7:
            assert profile.past_due_since is None
            assert PAYMENT_PAST_DUE not in flags_read(get_redis(), org.pk)

    assert schedule == [start + timedelta(days=d) for d in (3, 5, 7)] + [None]
    assert invoice.payment_attempts == 5 and invoice.status == "open"
    assert list(invoice.attempts.values_list("number", "outcome")) == [
        (n, "failed") for n in range(1, 6)
    ]
    assert len(fake_stripe.charges()) == 5
    keys = [r["idempotency_key"] for r in fake_stripe.requests if r["path"].endswith("intents")]
    assert len(set(keys)) == 5  # a new key per attempt
    profile = BillingProfile.objects.get(organization=org)
    assert profile.past_due_since == start + timedelta(days=7) + MINUTE
    assert PAYMENT_PAST_DUE in flags_read(get_redis(), org.pk)
    assert AuditLogEntry.objects.filter(action="billing.past_due", organization=org).count() == 1
    assert AuditLogEntry.objects.filter(action="invoice.payment_failed").count() == 5
    # One notice per failure: four "we will retry", then the past-due notice.
    subjects = [message.subject for message in mail.outbox]
    assert len(subjects) == 5
    assert all("Payment failed" in subject for subject in subjects[:4])
    assert "past due" in subjects[4] and "live API keys are refused" in mail.outbox[4].body
    # Nothing left to retry.
    assert run(payments.dunning_run, now=start + timedelta(days=30)) == 0


def test_a_payment_during_dunning_stops_the_retries(org, fake_stripe, make_open_invoice, run):
    save_card(org, DECLINED)
    invoice = make_open_invoice(org, "49.00")
    run(payments.on_invoice_finalized, invoice.pk)
    start = first_attempt_at(invoice)
    run(save_card, org, GOOD_CARD)  # the customer fixes the card: charged at once
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.next_payment_attempt_at is None
    assert run(payments.dunning_run, now=start + timedelta(days=8)) == 0
    assert BillingProfile.objects.get(organization=org).past_due_since is None


def test_the_schedule_is_a_setting(org, settings, fake_stripe, make_open_invoice, run):
    settings.DUNNING_RETRY_DAYS = [2]
    save_card(org, DECLINED)
    invoice = make_open_invoice(org)
    run(payments.on_invoice_finalized, invoice.pk)
    start = first_attempt_at(invoice)
    invoice.refresh_from_db()
    assert invoice.next_payment_attempt_at == start + timedelta(days=2)
    run(payments.dunning_run, now=start + timedelta(days=2))
    assert BillingProfile.objects.get(organization=org).past_due_since is not None


def test_a_late_dunning_run_does_not_fire_the_remaining_retries_at_once(
    org, fake_stripe, make_open_invoice, run
):
    save_card(org, DECLINED)
    invoice = make_open_invoice(org)
    run(payments.on_invoice_finalized, invoice.pk)
    late = first_attempt_at(invoice) + timedelta(days=6)  # beat was down for days
    run(payments.dunning_run, now=late)
    invoice.refresh_from_db()
    assert invoice.next_payment_attempt_at == late + payments.MIN_RETRY_GAP


def test_the_beat_task_runs_dunning(org, fake_stripe, make_open_invoice, run):
    save_card(org, DECLINED)
    invoice = make_open_invoice(org)
    run(payments.on_invoice_finalized, invoice.pk)
    Invoice.objects.filter(pk=invoice.pk).update(next_payment_attempt_at=timezone.now() - MINUTE)
    assert run(lambda: run_dunning.delay().get()) == 1
    invoice.refresh_from_db()
    assert invoice.payment_attempts == 2


def test_paying_every_exhausted_invoice_restores_access(org, fake_stripe, make_open_invoice, run):
    save_card(org, DECLINED)
    first, second = make_open_invoice(org, "10.00"), make_open_invoice(org, "20.00")
    exhaust(run, first)
    exhaust(run, second)
    assert PAYMENT_PAST_DUE in flags_read(get_redis(), org.pk)

    run(payments.invoice_mark_paid, actor=SYSTEM, invoice=first, reference="wire")
    assert BillingProfile.objects.get(organization=org).past_due_since is not None
    assert PAYMENT_PAST_DUE in flags_read(get_redis(), org.pk)

    run(payments.invoice_mark_paid, actor=SYSTEM, invoice=second, reference="wire")
    assert BillingProfile.objects.get(organization=org).past_due_since is None
    assert PAYMENT_PAST_DUE not in flags_read(get_redis(), org.pk)
    assert AuditLogEntry.objects.filter(action="billing.past_due_cleared").count() == 1


def test_an_invoice_still_in_dunning_does_not_keep_the_org_past_due(
    org, fake_stripe, make_open_invoice, run
):
    save_card(org, DECLINED)
    old = make_open_invoice(org, "10.00")
    exhaust(run, old)
    newer = make_open_invoice(org, "20.00")
    run(payments.on_invoice_finalized, newer.pk)  # declined once, retries ahead
    run(payments.invoice_mark_paid, actor=SYSTEM, invoice=old)
    assert BillingProfile.objects.get(organization=org).past_due_since is None
    newer.refresh_from_db()
    assert newer.next_payment_attempt_at is not None


def test_dunning_raises_lost_flags_again(org, fake_stripe, make_open_invoice, run):
    save_card(org, DECLINED)
    exhaust(run, make_open_invoice(org))
    flag_clear(get_redis(), org.pk, PAYMENT_PAST_DUE)  # e.g. Redis restarted empty
    payments.dunning_run()
    assert PAYMENT_PAST_DUE in flags_read(get_redis(), org.pk)


def test_past_due_refresh_clears_the_state_once_nothing_is_unpaid(
    org, fake_stripe, make_open_invoice, run
):
    """After the operator voids the unpaid invoice (invoicing.py), refreshing restores access."""
    save_card(org, DECLINED)
    invoice = make_open_invoice(org)
    exhaust(run, invoice)
    assert run(payments.past_due_refresh, organization=org) is True
    Invoice.objects.filter(pk=invoice.pk).update(status="void")
    assert run(payments.past_due_refresh, organization=org) is False
    assert PAYMENT_PAST_DUE not in flags_read(get_redis(), org.pk)


# --- At the gate ----------------------------------------------------------------------------
@pytest.fixture
def gate(fake_stripe, meters):
    ensure_demo_catalog(actor=SYSTEM)
    api_version_create(actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT)
    return make_gate()  # flags read without the 2 s cache


def test_the_gate_refuses_a_past_due_org_and_lets_it_back_after_payment(
    org, owner, gate, make_open_invoice, run
):
    project = ProjectFactory(organization=org)
    live_key = ApiKeyFactory(project=project, environment="live", scopes=["read"])
    test_key = ApiKeyFactory(project=project, environment="test", scopes=["read"])
    save_card(org, DECLINED)
    invoice = make_open_invoice(org, "49.00")
    run(payments.on_invoice_finalized, invoice.pk)
    assert call(gate, live_key).allowed  # failing payments alone do not stop the API

    start = first_attempt_at(invoice)
    for days in (1, 3, 5, 7):
        run(payments.dunning_run, now=start + timedelta(days=days) + MINUTE)
    decision = call(gate, live_key)
    assert (decision.allowed, decision.code) == (False, "payment_past_due")
    assert call(gate, test_key).allowed  # the sandbox keeps working

    run(save_card, org, GOOD_CARD)  # a working card: the unpaid invoice is charged at once
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert BillingProfile.objects.get(organization=org).past_due_since is None
    assert call(make_gate(), live_key).allowed
