"""Refunds made in Stripe's dashboard reach Tollgate through the webhook: the invoice gets a
credit note, already refunded (no credit on the customer's balance); refunds Tollgate made
itself, and refunds of payments that are not Tollgate's, change nothing."""

from decimal import Decimal

import pytest

from billing import payments, stripe_api
from billing.invoicing import credit_note_create
from billing.models import CreditGrant, CreditNote, StripeEvent
from portal.audit import Actor
from tests.billing.fake_stripe import event
from tests.billing.test_payments import card_on_file
from tests.billing.test_stripe_webhooks import deliver

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


@pytest.fixture
def paid_by_card(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org, "49.00")
    attempt = payments.on_invoice_finalized(invoice.pk)
    invoice.refresh_from_db()
    assert invoice.status == "paid" and attempt.outcome == "succeeded"
    return invoice, attempt


def dashboard_refund(attempt, cents: int) -> dict:
    """A refund as the operator makes it in Stripe's dashboard: through Stripe's API, with
    no Tollgate metadata."""
    refund = stripe_api._client().v1.refunds.create(
        params={"payment_intent": attempt.stripe_payment_intent_id, "amount": cents}
    )
    return refund.to_dict()


def test_a_dashboard_refund_becomes_a_refunded_credit_note(client, paid_by_card):
    invoice, attempt = paid_by_card
    refund = dashboard_refund(attempt, 1500)

    assert deliver(client, event("refund.created", refund)).status_code == 200

    note = CreditNote.objects.get(invoice=invoice)
    assert (note.amount, note.refunded, note.stripe_refund_id) == (
        Decimal("15.00"),
        True,
        refund["id"],
    )
    assert note.credit_grant is None and not CreditGrant.objects.exists()  # money went back
    invoice.refresh_from_db()
    assert invoice.amount_credited == Decimal("15.00") and invoice.status == "paid"
    # The same refund again, as a charge.refunded event carrying it: nothing new.
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": attempt.stripe_payment_intent_id,
        "refunds": {"object": "list", "data": [refund]},
    }
    assert deliver(client, event("charge.refunded", charge)).status_code == 200
    assert CreditNote.objects.count() == 1


def test_tollgates_own_refund_is_recognized_and_not_recorded_twice(
    client, paid_by_card, fake_stripe, django_capture_on_commit_callbacks
):
    invoice, _attempt = paid_by_card
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(
            actor=SYSTEM, invoice=invoice, amount=Decimal("10.00"), reason="Outage", refund=True
        )
    [refund] = fake_stripe.refunds.values()
    assert refund["metadata"] == {"tollgate_credit_note": note.number}

    deliver(client, event("refund.created", refund))

    note.refresh_from_db()
    assert CreditNote.objects.count() == 1 and note.stripe_refund_id == refund["id"]


def test_a_refund_larger_than_what_is_left_is_capped(client, paid_by_card):
    invoice, attempt = paid_by_card
    credit_note_create(actor=SYSTEM, invoice=invoice, amount=Decimal("40.00"), reason="Goodwill")
    refund = dashboard_refund(attempt, 4900)
    deliver(client, event("refund.created", refund))
    note = CreditNote.objects.get(stripe_refund_id=refund["id"])
    assert note.amount == Decimal("9.00")  # 49.00 less the 40.00 already credited


@pytest.mark.parametrize(
    "change",
    [
        {"status": "failed"},
        {"status": "canceled"},
        {"payment_intent": "pi_of_another_integration"},
        {"amount": 0},
    ],
)
def test_refunds_that_gave_nothing_back_or_are_not_ours_change_nothing(
    client, paid_by_card, change
):
    _invoice, attempt = paid_by_card
    refund = {**dashboard_refund(attempt, 500), **change}
    response = deliver(client, event("refund.created", refund))
    assert response.status_code == 200
    assert not CreditNote.objects.exists()
    assert StripeEvent.objects.get().processed_at is not None
