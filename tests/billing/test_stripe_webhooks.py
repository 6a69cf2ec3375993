"""POST /webhooks/stripe/: signatures verified by the stripe library, raw events stored
first, each Stripe event id processed once, bad input refused with problem+json."""

import json
import time

import pytest
from django.core import mail
from django.urls import reverse

from billing import payments
from billing.models import BillingProfile, Invoice, PaymentAttempt, StripeEvent
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.billing.fake_stripe import DECLINED, GOOD_CARD, PROCESSING, WEBHOOK_SECRET, event, sign

SYSTEM = Actor.system("test")
URL = "/webhooks/stripe/"
pytestmark = pytest.mark.django_db


def deliver(client, body, *, secret: str = WEBHOOK_SECRET, signature: str | None = None):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign(payload, secret),
    )


def processing_invoice(org, make_open_invoice) -> tuple[Invoice, PaymentAttempt]:
    """An invoice whose charge Stripe is still processing (a webhook settles it)."""
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_save(
        actor=SYSTEM, organization=org, customer_id=customer_id, payment_method_id=PROCESSING
    )
    invoice = make_open_invoice(org, "49.00")
    attempt = payments.on_invoice_finalized(invoice.pk)
    assert attempt.outcome == "pending"
    return invoice, attempt


def intent_object(attempt: PaymentAttempt, status: str, **extra) -> dict:
    return {
        "id": attempt.stripe_payment_intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": 4900,
        "currency": "usd",
        "metadata": {
            "invoice_id": str(attempt.invoice_id),
            "payment_attempt_id": str(attempt.pk),
        },
        **extra,
    }


def test_the_webhook_url_is_stable():
    assert reverse("stripe_webhook") == URL


# --- Payment outcomes -------------------------------------------------------------------------
def test_payment_intent_succeeded_pays_the_invoice(
    client, org, owner, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    invoice, attempt = processing_invoice(org, make_open_invoice)
    body = event("payment_intent.succeeded", intent_object(attempt, "succeeded"))
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, body)

    assert response.status_code == 200
    assert response.json() == {"received": True, "id": body["id"], "type": body["type"]}
    invoice.refresh_from_db()
    attempt.refresh_from_db()
    assert (invoice.status, attempt.outcome) == ("paid", "succeeded")
    stored = StripeEvent.objects.get(pk=body["id"])
    assert stored.payload == body and stored.processed_at is not None and stored.error == ""
    entry = AuditLogEntry.objects.get(action="invoice.paid")
    assert entry.actor_label == "system:stripe"
    assert len(mail.outbox) == 1


def test_payment_intent_payment_failed_starts_dunning(
    client, org, owner, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    invoice, attempt = processing_invoice(org, make_open_invoice)
    failure = {"code": "card_declined", "decline_code": "expired_card", "message": "Expired."}
    body = event(
        "payment_intent.payment_failed",
        intent_object(attempt, "requires_payment_method", last_payment_error=failure),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, body).status_code == 200
    invoice.refresh_from_db()
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.failure_code) == ("failed", "expired_card")
    assert invoice.payment_attempts == 1 and invoice.next_payment_attempt_at is not None
    assert invoice.last_payment_error == "Expired."
    assert "Expired." in mail.outbox[0].body


def test_the_same_event_delivered_twice_is_processed_once(
    client, org, owner, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    invoice, attempt = processing_invoice(org, make_open_invoice)
    body = event("payment_intent.succeeded", intent_object(attempt, "succeeded"))
    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(client, body)
        second = deliver(client, body)
    assert first.status_code == second.status_code == 200
    invoice.refresh_from_db()
    assert invoice.amount_paid == 49 and invoice.status == "paid"
    assert StripeEvent.objects.count() == 1
    assert AuditLogEntry.objects.filter(action="invoice.paid").count() == 1
    assert len(mail.outbox) == 1


def test_a_second_event_about_a_settled_payment_changes_nothing(
    client, org, fake_stripe, make_open_invoice
):
    """Stripe sends payment_intent.succeeded for charges Tollgate already recorded from the
    charge's own answer; a new event id about the same PaymentIntent is a no-op too."""
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_save(
        actor=SYSTEM, organization=org, customer_id=customer_id, payment_method_id=GOOD_CARD
    )
    invoice = make_open_invoice(org, "49.00")
    attempt = payments.on_invoice_finalized(invoice.pk)
    for _ in range(2):
        assert (
            deliver(
                client, event("payment_intent.succeeded", intent_object(attempt, "succeeded"))
            ).status_code
            == 200
        )
    invoice.refresh_from_db()
    assert invoice.amount_paid == 49
    assert AuditLogEntry.objects.filter(action="invoice.paid").count() == 1
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 2


def test_a_failure_already_recorded_by_the_charge_is_not_counted_again(
    client, org, fake_stripe, make_open_invoice
):
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_save(
        actor=SYSTEM, organization=org, customer_id=customer_id, payment_method_id=DECLINED
    )
    invoice = make_open_invoice(org, "49.00")
    attempt = payments.on_invoice_finalized(invoice.pk)
    body = event("payment_intent.payment_failed", intent_object(attempt, "requires_payment_method"))
    assert deliver(client, body).status_code == 200
    invoice.refresh_from_db()
    assert invoice.payment_attempts == 1
    assert AuditLogEntry.objects.filter(action="invoice.payment_failed").count() == 1


def test_payment_events_of_other_integrations_are_ignored(client, org, fake_stripe):
    stranger = {
        "id": "pi_elsewhere",
        "object": "payment_intent",
        "status": "succeeded",
        "metadata": {"payment_attempt_id": "not-a-uuid"},
    }
    body = event("payment_intent.succeeded", stranger)
    assert deliver(client, body).status_code == 200
    assert StripeEvent.objects.get(pk=body["id"]).processed_at is not None


# --- Saved cards ------------------------------------------------------------------------------
def test_setup_intent_succeeded_saves_the_card(client, org, fake_stripe):
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    body = event(
        "setup_intent.succeeded",
        {
            "id": "seti_1",
            "object": "setup_intent",
            "status": "succeeded",
            "customer": customer_id,
            "payment_method": "pm_from_webhook",
        },
    )
    assert deliver(client, body).status_code == 200
    profile = BillingProfile.objects.get(organization=org)
    assert profile.stripe_payment_method_id == "pm_from_webhook"


def test_checkout_session_completed_saves_the_card(client, org, fake_stripe):
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    session_url = payments.payment_method_checkout_start(
        actor=SYSTEM, organization=org, success_url="http://t/ok", cancel_url="http://t/no"
    )
    [session] = fake_stripe.sessions.values()
    assert session_url == session["url"] and session["customer"] == customer_id
    fake_stripe.complete_checkout(session["id"], "pm_card_mastercard")
    body = event("checkout.session.completed", {**session, "status": "complete"})
    assert deliver(client, body).status_code == 200
    profile = BillingProfile.objects.get(organization=org)
    assert profile.stripe_payment_method_id == "pm_card_mastercard"


def test_a_card_event_for_an_unknown_customer_is_ignored(client, org, fake_stripe):
    body = event(
        "setup_intent.succeeded",
        {
            "id": "seti_2",
            "object": "setup_intent",
            "customer": "cus_unknown",
            "payment_method": "pm_x",
        },
    )
    assert deliver(client, body).status_code == 200
    assert not BillingProfile.objects.filter(stripe_payment_method_id="pm_x").exists()


def test_a_card_event_without_a_customer_touches_no_organization(client, org, fake_stripe):
    # An org with a billing profile but no Stripe customer yet ("" in the column).
    BillingProfile.objects.create(organization=org)
    for event_type, data in (
        (
            "setup_intent.succeeded",
            {
                "id": "seti_3",
                "object": "setup_intent",
                "customer": None,
                "payment_method": "pm_someone_else",
                "status": "succeeded",
            },
        ),
    ):
        assert deliver(client, event(event_type, data)).status_code == 200
    assert BillingProfile.objects.get(organization=org).stripe_payment_method_id == ""


def test_unknown_event_types_are_stored_and_ignored(client, fake_stripe):
    body = event("customer.updated", {"id": "cus_1", "object": "customer"})
    assert deliver(client, body).status_code == 200
    stored = StripeEvent.objects.get(pk=body["id"])
    assert stored.type == "customer.updated" and stored.processed_at is not None


def test_a_failing_event_keeps_its_error_and_succeeds_when_delivered_again(
    client, org, fake_stripe
):
    payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_checkout_start(
        actor=SYSTEM, organization=org, success_url="http://t/ok", cancel_url="http://t/no"
    )
    [session] = fake_stripe.sessions.values()
    fake_stripe.complete_checkout(session["id"])
    body = event("checkout.session.completed", {**session, "status": "complete"})
    fake_stripe.outage = True  # the handler's call to Stripe fails
    response = deliver(client, body)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "stripe_event_failed"
    stored = StripeEvent.objects.get(pk=body["id"])
    assert stored.processed_at is None and "StripeUnavailable" in stored.error

    fake_stripe.outage = False
    assert deliver(client, body).status_code == 200
    stored.refresh_from_db()
    assert stored.processed_at is not None and stored.error == ""
    assert BillingProfile.objects.get(organization=org).stripe_payment_method_id == GOOD_CARD


# --- Refused deliveries ---------------------------------------------------------------------
def _assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["detail"]


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "garbage",
        "t=1,v1=00",
        sign(b'{"other": "payload"}'),
        "wrong-secret",
        "stale",
    ],
    ids=["missing", "garbage", "bad-digest", "other-payload", "wrong-secret", "stale"],
)
def test_a_wrong_signature_is_refused_and_changes_nothing(
    client, org, fake_stripe, make_open_invoice, signature
):
    invoice, attempt = processing_invoice(org, make_open_invoice)
    body = event("payment_intent.succeeded", intent_object(attempt, "succeeded"))
    payload = json.dumps(body).encode()
    if signature == "wrong-secret":
        signature = sign(payload, "whsec_someone_else")
    elif signature == "stale":
        signature = sign(payload, timestamp=int(time.time()) - 3600)
    response = deliver(client, payload, signature=signature)
    _assert_problem(response, 400, "stripe_signature_invalid")
    assert not StripeEvent.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == "open" and invoice.amount_paid == 0


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"id": "evt_1"}',
        b'{"id": 1, "type": "x", "data": {}}',
    ],
    ids=["broken-json", "not-utf8", "a-list", "no-type", "id-not-a-string"],
)
def test_a_signed_body_that_is_not_an_event_is_400(client, fake_stripe, payload):
    signature = sign(payload) if payload != b"\xff\xfe" else "t=1,v1=00"
    response = deliver(client, payload, signature=signature)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in ("malformed_request", "stripe_signature_invalid")
    assert not StripeEvent.objects.exists()


def test_malformed_json_with_a_valid_signature_is_a_malformed_request(client, fake_stripe):
    payload = b'{"id": "evt_x", "type": '
    _assert_problem(deliver(client, payload, signature=sign(payload)), 400, "malformed_request")


def test_only_post_is_allowed(client, fake_stripe):
    assert client.get(URL).status_code == 405


def test_without_a_webhook_secret_deliveries_wait(client, settings, fake_stripe):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = event("customer.updated", {"id": "cus_1"})
    _assert_problem(deliver(client, body), 503, "stripe_not_configured")
    assert not StripeEvent.objects.exists()


def test_the_webhook_needs_no_csrf_token(fake_stripe):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    body = event("customer.updated", {"id": "cus_1"})
    assert deliver(strict, body).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_are_processed_once(org, fake_stripe, make_open_invoice):
    import threading

    from django.db import connections
    from django.test import Client

    invoice, attempt = processing_invoice(org, make_open_invoice)
    body = event("payment_intent.succeeded", intent_object(attempt, "succeeded"))
    barrier = threading.Barrier(4)
    statuses = []

    def worker() -> None:
        try:
            barrier.wait()
            statuses.append(deliver(Client(), body).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * 4
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", 49)
    assert StripeEvent.objects.count() == 1
    assert AuditLogEntry.objects.filter(action="invoice.paid").count() == 1
