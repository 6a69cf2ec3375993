"""Collecting invoices: Stripe charges through the real library against the local fake
Stripe server, manual collection without keys, manual payments, refunds, the portal's
payment method box and the admin's payment records."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from billing import payments, stripe_api
from billing.models import BillingProfile, CreditNote, Invoice, PaymentAttempt
from common.errors import Conflict, InvalidInput, NotFound
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.billing.fake_stripe import DECLINED, GOOD_CARD, PROCESSING
from tests.factories import MembershipFactory, UserFactory

SYSTEM = Actor.system("test")
D = Decimal


def card_on_file(org, payment_method: str = GOOD_CARD) -> BillingProfile:
    """The org's Stripe customer (created on the fake) with `payment_method` saved."""
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_save(
        actor=SYSTEM, organization=org, customer_id=customer_id, payment_method_id=payment_method
    )
    return BillingProfile.objects.get(organization=org)


@pytest.fixture
def billing_member(org):
    return MembershipFactory(organization=org, role=Role.BILLING).user


@pytest.fixture
def member_client(client, owner):
    client.force_login(owner)
    return client


# --- Charging at finalization ---------------------------------------------------------------
def test_a_finalized_invoice_is_charged_to_the_saved_card(
    org, owner, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    card_on_file(org)
    invoice = make_open_invoice(org, "49.00")
    with django_capture_on_commit_callbacks(execute=True):
        attempt = payments.on_invoice_finalized(invoice.pk)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("49"), D("0"))
    assert invoice.paid_at is not None and invoice.collection == "automatic"
    assert invoice.next_payment_attempt_at is None
    assert (attempt.number, attempt.outcome, attempt.amount) == (1, "succeeded", D("49"))
    assert attempt.stripe_payment_intent_id == invoice.stripe_payment_intent_id != ""
    [charge] = fake_stripe.charges()
    assert charge["amount"] == "4900" and charge["currency"] == "usd"
    assert (charge["off_session"], charge["confirm"]) == ("true", "true")
    assert charge["payment_method"] == GOOD_CARD
    assert charge["metadata"] == {
        "invoice_id": str(invoice.pk),
        "payment_attempt_id": str(attempt.pk),
        "organization_id": str(org.pk),
    }
    [request] = [r for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"]
    assert request["idempotency_key"] == f"tollgate-invoice-{invoice.pk}-attempt-1"
    assert AuditLogEntry.objects.filter(action="invoice.paid", target_id=str(invoice.pk)).exists()
    [receipt] = mail.outbox
    assert owner.email in receipt.to
    assert "We received 49.00 USD" in receipt.body and invoice.number in receipt.subject


def test_a_declined_card_schedules_a_retry_and_tells_the_billing_contacts(
    org, owner, billing_member, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    card_on_file(org, DECLINED)
    invoice = make_open_invoice(org, "49.00")
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        attempt = payments.on_invoice_finalized(invoice.pk)

    invoice.refresh_from_db()
    assert invoice.status == "open" and invoice.amount_paid == 0
    assert (attempt.outcome, attempt.failure_code) == ("failed", "generic_decline")
    assert attempt.failure_message == "Your card was declined."
    assert attempt.stripe_payment_intent_id.startswith("pi_")
    assert invoice.payment_attempts == 1
    assert invoice.last_payment_error == "Your card was declined."
    # The first retry is a day after the first attempt.
    assert before + timedelta(days=1) <= invoice.next_payment_attempt_at
    assert invoice.next_payment_attempt_at <= timezone.now() + timedelta(days=1)
    [notice] = mail.outbox
    assert set(notice.to) == {owner.email, billing_member.email}
    assert "Your card was declined." in notice.body and "We will try again on" in notice.body
    assert AuditLogEntry.objects.filter(action="invoice.payment_failed").count() == 1


def test_without_stripe_keys_invoices_are_marked_for_manual_collection(
    org, no_stripe, make_open_invoice
):
    BillingProfile.objects.create(
        organization=org, stripe_customer_id="cus_x", stripe_payment_method_id="pm_x"
    )
    invoice = make_open_invoice(org, "49.00", collection="automatic")
    assert payments.on_invoice_finalized(invoice.pk) is None
    invoice.refresh_from_db()
    assert (invoice.status, invoice.collection) == ("open", "manual")
    assert not invoice.attempts.exists()
    assert payments.dunning_run(now=timezone.now() + timedelta(days=30)) == 0
    entry = AuditLogEntry.objects.get(action="invoice.collection_manual")
    assert entry.changes == {"reason": "stripe_not_configured"}


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        (None, "no_payment_method"),
        ({"stripe_customer_id": "cus_1"}, "no_payment_method"),
        (
            {"collection": "manual", "stripe_customer_id": "c", "stripe_payment_method_id": "p"},
            "manual_collection",
        ),
    ],
    ids=["no-profile", "no-card", "manual-profile"],
)
def test_an_org_that_cannot_be_charged_is_collected_manually(
    org, fake_stripe, make_open_invoice, profile, reason
):
    if profile is not None:
        BillingProfile.objects.create(organization=org, **profile)
    invoice = make_open_invoice(org, collection="automatic")
    payments.on_invoice_finalized(invoice.pk)
    invoice.refresh_from_db()
    assert invoice.collection == "manual" and invoice.next_payment_attempt_at is None
    assert fake_stripe.charges() == []
    assert AuditLogEntry.objects.get(action="invoice.collection_manual").changes == {
        "reason": reason
    }


def test_an_invoice_with_nothing_due_is_paid_without_a_charge(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org, "0.00")
    payments.on_invoice_finalized(invoice.pk)
    invoice.refresh_from_db()
    assert invoice.status == "paid" and fake_stripe.charges() == []


def test_only_open_invoices_are_charged(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    for status in ("draft", "void", "paid", "uncollectible"):
        invoice = make_open_invoice(org, status=status)
        assert payments.on_invoice_finalized(invoice.pk) is None
        assert payments.invoice_charge(invoice=invoice) is None
    assert fake_stripe.charges() == []


def test_charging_a_paid_invoice_again_does_nothing(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org)
    payments.on_invoice_finalized(invoice.pk)
    assert payments.invoice_charge(invoice=invoice) is None
    assert payments.on_invoice_finalized(invoice.pk) is None
    assert len(fake_stripe.charges()) == 1


def test_a_charge_in_flight_is_not_sent_twice(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org)
    PaymentAttempt.objects.create(invoice=invoice, number=1, amount=D("49"))  # a worker's
    assert payments.invoice_charge(invoice=invoice) is None
    assert fake_stripe.charges() == []


def test_a_charge_that_never_got_its_answer_is_resent_under_the_same_key(
    org, fake_stripe, make_open_invoice
):
    card_on_file(org)
    invoice = make_open_invoice(org)
    now = timezone.now()
    stale = PaymentAttempt.objects.create(
        invoice=invoice, number=1, amount=D("49"), attempted_at=now - timedelta(hours=1)
    )
    attempt = payments.invoice_charge(invoice=invoice, now=now)
    assert attempt.pk == stale.pk and attempt.outcome == "succeeded"
    [request] = [r for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"]
    assert request["idempotency_key"] == f"tollgate-invoice-{invoice.pk}-attempt-1"
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1


def test_a_payment_still_processing_waits_for_the_webhook(org, fake_stripe, make_open_invoice):
    card_on_file(org, PROCESSING)
    invoice = make_open_invoice(org)
    attempt = payments.on_invoice_finalized(invoice.pk)
    invoice.refresh_from_db()
    assert attempt.outcome == "pending" and attempt.stripe_payment_intent_id.startswith("pi_")
    assert invoice.status == "open" and invoice.next_payment_attempt_at is None
    assert payments.invoice_charge(invoice=invoice) is None  # no second charge meanwhile
    assert len(fake_stripe.charges()) == 1


def test_a_stripe_outage_is_retried_soon_without_counting_against_the_customer(
    org, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    card_on_file(org)
    invoice = make_open_invoice(org)
    fake_stripe.outage = True
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        attempt = payments.invoice_charge(invoice=invoice, now=now)
    invoice.refresh_from_db()
    # No answer: the charge may have happened, so the attempt stays open for a re-send.
    assert (attempt.outcome, attempt.failure_code) == ("pending", "processor_error")
    assert invoice.payment_attempts == 0
    assert invoice.next_payment_attempt_at == now + payments.PROCESSOR_RETRY
    assert mail.outbox == []
    fake_stripe.outage = False
    assert payments.dunning_run(now=now + payments.PROCESSOR_RETRY) == 1
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.attempts.count() == 1


def test_a_charge_whose_answer_was_lost_is_re_sent_under_the_same_key_not_charged_twice(
    org, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    card_on_file(org)
    invoice = make_open_invoice(org)
    # More lost answers than the library's own retries: Stripe charged, Tollgate never heard.
    fake_stripe.lost_responses = 5
    now = timezone.now()
    attempt = payments.invoice_charge(invoice=invoice, now=now)
    assert attempt.outcome == "pending" and len(fake_stripe.payment_intents) == 1
    fake_stripe.lost_responses = 0
    with django_capture_on_commit_callbacks(execute=True):
        assert payments.dunning_run(now=now + payments.PROCESSOR_RETRY) == 1
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.amount_paid == invoice.total
    assert len(fake_stripe.payment_intents) == 1  # one charge, found again by its key
    keys = {
        r["idempotency_key"] for r in fake_stripe.requests if r["path"] == "/v1/payment_intents"
    }
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("49.00", "USD", 4900), ("0.01", "EUR", 1), ("500", "JPY", 500), ("1.235", "BHD", 1235)],
)
def test_amounts_go_to_stripe_in_the_currencys_minor_unit(amount, currency, minor):
    assert stripe_api.to_minor_units(D(amount), currency) == minor
    assert stripe_api.from_minor_units(minor, currency.lower()) == D(amount)


def test_a_yen_invoice_is_charged_in_whole_yen(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org, "5000", currency="JPY")
    payments.on_invoice_finalized(invoice.pk)
    [charge] = fake_stripe.charges()
    assert (charge["amount"], charge["currency"]) == ("5000", "jpy")


# --- Manual payments ------------------------------------------------------------------------
def test_the_operator_marks_an_invoice_paid(
    org, owner, no_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    invoice = make_open_invoice(org, "49.00")
    payments.on_invoice_finalized(invoice.pk)
    with django_capture_on_commit_callbacks(execute=True):
        payments.invoice_mark_paid(
            actor=SYSTEM, invoice=invoice, amount=D("20"), reference="wire 1"
        )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("open", D("29"))
    with django_capture_on_commit_callbacks(execute=True):
        payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice, reference="wire 2")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", D("49"))
    entries = AuditLogEntry.objects.filter(action="invoice.marked_paid").order_by("created_at")
    assert [entry.changes["reference"] for entry in entries] == ["wire 1", "wire 2"]
    assert len(mail.outbox) == 2 and "29.00 USD remains due" in mail.outbox[0].body


@pytest.mark.parametrize("amount", [D("0"), D("-1"), D("49.01"), D("NaN")])
def test_marking_paid_refuses_amounts_that_are_not_due(org, no_stripe, make_open_invoice, amount):
    invoice = make_open_invoice(org, "49.00")
    with pytest.raises(InvalidInput):
        payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice, amount=amount)
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0


@pytest.mark.parametrize("status", ["draft", "void", "paid"])
def test_only_open_or_uncollectible_invoices_can_be_marked_paid(
    org, no_stripe, make_open_invoice, status
):
    invoice = make_open_invoice(org, status=status)
    with pytest.raises(Conflict) as raised:
        payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice)
    assert raised.value.code == "invoice_not_payable"


def test_an_uncollectible_invoice_can_still_be_paid(org, no_stripe, make_open_invoice):
    invoice = make_open_invoice(org, status="uncollectible")
    payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_a_credit_note_on_a_stripe_payment_is_refunded(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org, "49.00")
    attempt = payments.on_invoice_finalized(invoice.pk)
    note = CreditNote.objects.create(
        invoice=invoice, number="CN-T-0001", amount=D("10.50"), reason="outage"
    )
    refund_id = payments.credit_note_refund(actor=SYSTEM, credit_note=note)
    assert refund_id.startswith("re_")
    [refund] = fake_stripe.refunds.values()
    assert (refund["amount"], refund["payment_intent"]) == (1050, attempt.stripe_payment_intent_id)
    note.refresh_from_db()
    assert note.refunded
    assert payments.credit_note_refund(actor=SYSTEM, credit_note=note) is None  # once
    assert AuditLogEntry.objects.filter(action="credit_note.refunded").count() == 1


def test_a_credit_note_on_a_manual_payment_is_not_refunded_through_stripe(
    org, fake_stripe, make_open_invoice
):
    invoice = make_open_invoice(org, "49.00")
    payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice)
    note = CreditNote.objects.create(invoice=invoice, number="CN-T-0002", amount=D("1"), reason="x")
    assert payments.credit_note_refund(actor=SYSTEM, credit_note=note) is None
    assert fake_stripe.refunds == {}


def test_a_refund_stripe_refuses_becomes_credit_so_nothing_is_lost(
    org, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    from billing.invoicing import credit_note_create

    card_on_file(org)
    invoice = make_open_invoice(org, "49.00")
    payments.on_invoice_finalized(invoice.pk)
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    fake_stripe.outage = True
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(
            actor=SYSTEM, invoice=invoice, amount=D("10.50"), reason="SLA", refund=True
        )
    note.refresh_from_db()
    assert not note.refunded and note.credit_grant is not None
    assert note.credit_grant.remaining == D("10.50")
    assert AuditLogEntry.objects.filter(action="credit_note.refund_failed").count() == 1


def test_a_refund_larger_than_the_stripe_payment_credits_the_rest(
    org, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    from billing.invoicing import credit_note_create

    card_on_file(org)
    invoice = make_open_invoice(org, "49.00")
    payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice, amount=D("19.00"))
    payments.on_invoice_finalized(invoice.pk)  # Stripe collects the other 30.00
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(
            actor=SYSTEM, invoice=invoice, amount=D("40.00"), reason="x", refund=True
        )
    [refund] = fake_stripe.refunds.values()
    assert refund["amount"] == 3000
    note.refresh_from_db()
    assert note.refunded and note.credit_grant.amount == D("10.00")


# --- The portal's payment method box ------------------------------------------------------
def _overview(org) -> str:
    return reverse("org_billing:overview", kwargs={"slug": org.slug})


def test_adding_a_payment_method_goes_through_stripe_checkout(
    org, member_client, fake_stripe, make_open_invoice
):
    page = member_client.get(_overview(org))
    assert b"Add a payment method" in page.content and b"No card saved yet" in page.content

    response = member_client.post(
        reverse("org_billing:payment_method_add", kwargs={"slug": org.slug})
    )
    [session] = fake_stripe.sessions.values()
    assert response.status_code == 302 and response["Location"] == session["url"]
    assert session["mode"] == "setup"
    assert session["success_url"].endswith(
        f"/o/{org.slug}/billing/payment-method/done?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert session["cancel_url"].endswith(_overview(org))
    profile = BillingProfile.objects.get(organization=org)
    assert profile.stripe_customer_id == session["customer"]
    assert fake_stripe.customers[session["customer"]]["metadata"] == {
        "organization_id": str(org.pk)
    }

    fake_stripe.complete_checkout(session["id"], GOOD_CARD)
    done = reverse("org_billing:payment_method_done", kwargs={"slug": org.slug})
    response = member_client.get(done, {"session_id": session["id"]})
    assert response.status_code == 302 and response["Location"] == _overview(org)
    profile.refresh_from_db()
    assert profile.stripe_payment_method_id == GOOD_CARD
    assert AuditLogEntry.objects.filter(action="billing.payment_method_saved").count() == 1
    page = member_client.get(_overview(org))
    assert b"A card is saved" in page.content and b"Replace the card" in page.content


def test_the_billing_page_tells_a_past_due_org_what_to_do(org, member_client, fake_stripe):
    BillingProfile.objects.create(organization=org, past_due_since=timezone.now())
    page = member_client.get(_overview(org)).content.decode()
    assert 'id="past-due-notice"' in page and "live API calls are refused" in page
    assert "Add a payment method" in page


def test_an_org_on_manual_collection_has_no_card_button(org, member_client, fake_stripe):
    BillingProfile.objects.create(organization=org, collection="manual")
    page = member_client.get(_overview(org)).content.decode()
    assert "bank transfer" in page and "Add a payment method" not in page


def test_a_second_checkout_reuses_the_stripe_customer(org, member_client, fake_stripe):
    url = reverse("org_billing:payment_method_add", kwargs={"slug": org.slug})
    member_client.post(url)
    member_client.post(url)
    assert len(fake_stripe.customers) == 1 and len(fake_stripe.sessions) == 2


def test_an_unfinished_checkout_saves_nothing(org, member_client, fake_stripe):
    member_client.post(reverse("org_billing:payment_method_add", kwargs={"slug": org.slug}))
    [session] = fake_stripe.sessions.values()
    response = member_client.get(
        reverse("org_billing:payment_method_done", kwargs={"slug": org.slug}),
        {"session_id": session["id"]},
        follow=True,
    )
    assert "not complete" in str(next(iter(get_messages(response.wsgi_request))))
    assert BillingProfile.objects.get(organization=org).stripe_payment_method_id == ""


def test_another_orgs_checkout_session_is_unknown(org, other_org, fake_stripe):
    other_customer = payments.stripe_customer_ensure(actor=SYSTEM, organization=other_org)
    payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    foreign = stripe_api.checkout_setup_session_create(
        customer_id=other_customer,
        organization_id=str(other_org.pk),
        success_url="http://testserver/ok",
        cancel_url="http://testserver/no",
    )
    fake_stripe.complete_checkout(foreign.id)
    for session_id in (foreign.id, "cs_test_nope", "not-a-session", ""):
        with pytest.raises(NotFound):
            payments.payment_method_checkout_complete(
                actor=SYSTEM, organization=org, session_id=session_id
            )
    assert BillingProfile.objects.get(organization=org).stripe_payment_method_id == ""


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_members_without_billing_rights_cannot_add_a_payment_method(org, client, fake_stripe, role):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=role)
    client.force_login(user)
    assert b"Add a payment method" not in client.get(_overview(org)).content
    url = reverse("org_billing:payment_method_add", kwargs={"slug": org.slug})
    assert client.post(url).status_code == 403
    assert fake_stripe.requests == []


def test_a_non_member_gets_404(other_org, member_client, fake_stripe):
    url = reverse("org_billing:payment_method_add", kwargs={"slug": other_org.slug})
    assert member_client.post(url).status_code == 404


def test_adding_a_payment_method_is_a_post(org, member_client, fake_stripe):
    url = reverse("org_billing:payment_method_add", kwargs={"slug": org.slug})
    assert member_client.get(url).status_code == 405


def test_without_stripe_the_portal_says_cards_are_not_available(org, member_client, no_stripe):
    response = member_client.post(
        reverse("org_billing:payment_method_add", kwargs={"slug": org.slug}), follow=True
    )
    assert "bank transfer" in str(next(iter(get_messages(response.wsgi_request))))
    assert not BillingProfile.objects.filter(organization=org).exists()


def test_saving_a_card_charges_the_open_invoices(
    org, fake_stripe, make_open_invoice, django_capture_on_commit_callbacks
):
    invoice = make_open_invoice(org)
    payments.on_invoice_finalized(invoice.pk)  # no card yet: manual
    with django_capture_on_commit_callbacks(execute=True):
        card_on_file(org)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.collection) == ("paid", "automatic")


# --- Admin ------------------------------------------------------------------------------------
@pytest.fixture
def operator(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.mark.parametrize("model", ["paymentattempt", "stripeevent"])
def test_payment_records_are_read_only_in_the_admin(
    client, operator, org, fake_stripe, make_open_invoice, model
):
    card_on_file(org)
    payments.on_invoice_finalized(make_open_invoice(org).pk)
    assert client.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:billing_{model}_add")).status_code == 403


def test_the_mark_paid_admin_action_uses_the_service(
    rf, operator, org, no_stripe, make_open_invoice
):
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage

    from billing.invoice_admin import mark_invoices_paid

    invoices = [make_open_invoice(org), make_open_invoice(org, status="void")]
    request = rf.post("/admin/billing/invoice/")
    request.user = operator
    request.session = {}
    request._messages = FallbackStorage(request)
    mark_invoices_paid(
        admin.ModelAdmin(Invoice, admin.site),
        request,
        Invoice.objects.filter(pk__in=[i.pk for i in invoices]),
    )
    statuses = dict(Invoice.objects.values_list("number", "status"))
    assert sorted(statuses.values()) == ["paid", "void"]
    texts = [str(message) for message in request._messages]
    assert any("1 invoice(s) marked paid" in text for text in texts)
    assert any("only open or uncollectible" in text for text in texts)
    entry = AuditLogEntry.objects.get(action="invoice.marked_paid")
    assert entry.actor_user == operator


# --- Concurrency ----------------------------------------------------------------------------
def _race(count: int, function) -> list:
    """Runs `function` in `count` threads released together; returns what each returned."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = function()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_of_one_invoice_charge_it_once(org, fake_stripe, make_open_invoice):
    card_on_file(org)
    invoice = make_open_invoice(org, "49.00")
    fake_stripe.charge_delay = 0.3  # the first charge is still in flight when the others look
    results = _race(4, lambda: payments.invoice_charge(invoice=invoice))
    assert len([result for result in results if result is not None]) == 1
    assert len(fake_stripe.charges()) == 1
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", D("49"))
    assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
