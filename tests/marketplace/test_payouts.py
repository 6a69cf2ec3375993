"""Payouts (MKT-4): one per statement with a payable balance; a Stripe Connect transfer through
the real `stripe` library and the local fake Stripe server when Stripe is configured, else
recorded by the operator; failures kept and retried without a second transfer."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing import payments, stripe_api
from billing.invoicing import credit_note_create
from billing.models import InvoiceLine
from billing.pricing.money import round_money
from common.errors import Conflict, InvalidInput
from marketplace.models import Partner, PartnerStatement, Payout
from marketplace.payouts import payout_create, payout_mark_paid, payout_send
from marketplace.revenue import agreement_create, revenue_accrue
from marketplace.services import partner_apply, partner_decide
from marketplace.statements import month_bounds, statement_lines, statements_close
from marketplace.tasks import close_partner_statements
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.billing.conftest import (  # noqa: F401 -- fixtures
    fake_stripe,
    fake_stripe_server,
    make_open_invoice,
    no_stripe,
)
from tests.billing.test_invoicing import make_plan, subscribe
from tests.billing.test_payments import card_on_file
from tests.factories import UserFactory
from tests.marketplace.test_paid_apps import (  # noqa: F401 -- fixtures and helpers
    close_period,
    customer,
    install_app,
    paid_app,
    period_start,
)
from tests.marketplace.test_partners import APPLICATION
from tests.marketplace.test_statements import (  # noqa: F401 -- fixtures
    AFTER_NOVEMBER,
    NOVEMBER,
    accruals,
    agreement,
    app,
    ledger,
    member,
    partner,
)

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
ACCOUNT = APPLICATION["payout_reference"]


@pytest.fixture
def statement(ledger) -> PartnerStatement:  # noqa: F811
    first = ledger.earning("100.00", "2026-11-03")
    ledger.earning("49.99", "2026-11-30")
    ledger.reversal(first, "20.00", "2026-11-20", number="CN-T-0001")
    [closed] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)
    assert closed.payable == Decimal("90.99")
    return closed


def repay_to(partner, **changes) -> Partner:  # noqa: F811
    """The partner edits its payout details on its partner page."""
    fields = {**APPLICATION, **changes}
    return partner_apply(actor=SYSTEM, organization=partner.organization, **fields)


# --- Creating ----------------------------------------------------------------------------
def test_a_statement_gets_one_payout_of_its_payable_balance(statement):
    payout = payout_create(actor=SYSTEM, statement=statement)

    assert (payout.amount, payout.currency, payout.status) == (Decimal("90.99"), "USD", "pending")
    assert (payout.method, payout.destination) == ("stripe_connect", ACCOUNT)
    assert payout_create(actor=SYSTEM, statement=statement) == payout
    assert Payout.objects.count() == 1
    assert AuditLogEntry.objects.filter(action="payout.created").count() == 1


def test_a_statement_with_nothing_payable_gets_no_payout(ledger):  # noqa: F811
    earning = ledger.earning("100.00", "2026-11-03")
    ledger.reversal(earning, "100.00", "2026-11-04", number="CN-T-0001")
    [statement] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    assert statement.payable == 0
    assert payout_create(actor=SYSTEM, statement=statement) is None
    assert not Payout.objects.exists()


# --- Stripe Connect -------------------------------------------------------------------------
def test_a_connect_payout_is_a_stripe_transfer_in_minor_units(
    statement,
    fake_stripe,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    owner = member(statement.partner.organization, Role.OWNER)
    payout = payout_create(actor=SYSTEM, statement=statement)

    with django_capture_on_commit_callbacks(execute=True):
        paid = payout_send(actor=SYSTEM, payout=payout)

    [transfer] = fake_stripe.transfers.values()
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        9099,
        "usd",
        ACCOUNT,
    )
    assert transfer["transfer_group"] == "PS-2026-11-0001"
    assert transfer["metadata"] == {"payout_id": str(payout.pk), "statement": "PS-2026-11-0001"}
    [sent] = fake_stripe.transfer_requests()
    assert sent["idempotency_key"] == f"tollgate-payout-{payout.pk}-1"  # the first send
    assert (paid.status, paid.stripe_transfer_id) == ("paid", transfer["id"])
    assert paid.paid_at is not None and paid.failure_message == ""
    [message] = mail.outbox
    assert set(message.to) == {owner.email, APPLICATION["payout_email"]}
    assert "PS-2026-11-0001" in message.subject and "90.99" in message.body
    assert AuditLogEntry.objects.filter(action="payout.paid", target_id=str(payout.pk)).exists()


def test_a_paid_payout_is_not_sent_again(statement, fake_stripe):  # noqa: F811
    payout = payout_send(actor=SYSTEM, payout=payout_create(actor=SYSTEM, statement=statement))

    with pytest.raises(Conflict) as refused:
        payout_send(actor=SYSTEM, payout=payout)

    assert refused.value.code == "payout_already_paid"
    assert len(fake_stripe.transfers) == 1


def test_a_lost_answer_is_found_on_the_retry_without_a_second_transfer(
    statement,
    fake_stripe,  # noqa: F811
):
    payout = payout_create(actor=SYSTEM, statement=statement)
    fake_stripe.lost_responses = 1  # Stripe makes the transfer; its answer never arrives

    failed = payout_send(actor=SYSTEM, payout=payout)
    assert failed.status == "failed" and failed.failure_message
    paid = payout_send(actor=SYSTEM, payout=payout)

    [transfer] = fake_stripe.transfers.values()
    assert (paid.status, paid.stripe_transfer_id) == ("paid", transfer["id"])
    # The retry asked Stripe for the payout's transfer and found it: one POST in all.
    assert len(fake_stripe.transfer_requests()) == 1


def test_a_lost_answer_then_a_new_account_still_makes_one_transfer(
    statement,
    fake_stripe,  # noqa: F811
):
    """The retry goes under a new idempotency key (the partner changed its account, or a
    day passed): Tollgate finds the transfer the lost answer made instead of paying twice."""
    payout = payout_create(actor=SYSTEM, statement=statement)
    fake_stripe.lost_responses = 1
    failed = payout_send(actor=SYSTEM, payout=payout)
    assert failed.status == "failed"
    moved = statement.partner
    moved.payout_reference = "acct_1NewAccount99"
    moved.save(update_fields=["payout_reference"])

    paid = payout_send(actor=SYSTEM, payout=failed)

    [transfer] = fake_stripe.transfers.values()
    assert (paid.status, paid.stripe_transfer_id) == ("paid", transfer["id"])
    assert len(fake_stripe.transfer_requests()) == 1


def test_a_retry_sends_nothing_while_stripe_cannot_say_what_was_made(
    statement,
    fake_stripe,  # noqa: F811
):
    payout = payout_create(actor=SYSTEM, statement=statement)
    fake_stripe.lost_responses = 1
    failed = payout_send(actor=SYSTEM, payout=payout)
    fake_stripe.outage = True
    still = payout_send(actor=SYSTEM, payout=failed)
    assert still.status == "failed" and "could not say" in still.failure_message
    assert len(fake_stripe.transfer_requests()) == 1
    fake_stripe.outage = False
    assert payout_send(actor=SYSTEM, payout=still).status == "paid"
    assert len(fake_stripe.transfers) == 1


def test_a_refusal_fixed_within_the_day_is_sent_again_under_a_new_key(
    statement,
    fake_stripe,  # noqa: F811
):
    """Stripe replays a stored refusal for a key it has seen; the retry's key is new, and
    it is made only after Stripe says the payout has no transfer."""
    payout = payout_create(actor=SYSTEM, statement=statement)
    fake_stripe.platform_balance = 0
    failed = payout_send(actor=SYSTEM, payout=payout)
    assert failed.status == "failed" and "insufficient available funds" in failed.failure_message
    fake_stripe.platform_balance = None  # the operator topped up the balance

    paid = payout_send(actor=SYSTEM, payout=failed)

    assert (paid.status, paid.send_attempts) == ("paid", 2)
    keys = [request["idempotency_key"] for request in fake_stripe.transfer_requests()]
    assert keys == [f"tollgate-payout-{payout.pk}-1", f"tollgate-payout-{payout.pk}-2"]
    assert len(fake_stripe.transfers) == 1


def test_a_stripe_outage_fails_the_payout_and_a_retry_pays_it(statement, fake_stripe):  # noqa: F811
    payout = payout_create(actor=SYSTEM, statement=statement)
    fake_stripe.outage = True

    failed = payout_send(actor=SYSTEM, payout=payout)

    assert failed.status == "failed"
    assert "Something went wrong on Stripe's end" in failed.failure_message
    assert AuditLogEntry.objects.filter(action="payout.failed").count() == 1
    assert not fake_stripe.transfers
    fake_stripe.outage = False
    paid = payout_send(actor=SYSTEM, payout=failed)
    assert paid.status == "paid" and paid.failure_message == ""
    assert len(fake_stripe.transfers) == 1


def test_a_missing_account_fails_with_stripes_message_and_the_corrected_one_is_paid(
    statement,
    fake_stripe,  # noqa: F811
):
    repay_to(statement.partner, payout_reference="acct_missing0000001")
    payout = payout_create(actor=SYSTEM, statement=statement)

    failed = payout_send(actor=SYSTEM, payout=payout)
    assert failed.status == "failed"
    assert failed.failure_message == "No such destination: 'acct_missing0000001'"
    assert payout_send(actor=SYSTEM, payout=failed).status == "failed"  # nothing changed

    repay_to(statement.partner, payout_reference="acct_1Fixed0000000002")
    paid = payout_send(actor=SYSTEM, payout=failed)

    assert (paid.status, paid.destination) == ("paid", "acct_1Fixed0000000002")
    [transfer] = fake_stripe.transfers.values()
    assert transfer["destination"] == "acct_1Fixed0000000002"
    assert AuditLogEntry.objects.filter(action="payout.destination_changed").count() == 1


def test_a_yen_payout_is_sent_in_whole_yen(ledger, fake_stripe):  # noqa: F811
    ledger.earning("1001", "2026-11-03", currency="JPY")  # 70% = 700.7 -> 701
    [statement] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    payout_send(actor=SYSTEM, payout=payout_create(actor=SYSTEM, statement=statement))

    [transfer] = fake_stripe.transfers.values()
    assert (transfer["amount"], transfer["currency"]) == (701, "jpy")


def test_a_suspended_partners_payout_is_held(statement, fake_stripe):  # noqa: F811
    payout = payout_create(actor=SYSTEM, statement=statement)
    partner_decide(actor=SYSTEM, partner=statement.partner, status="suspended")

    with pytest.raises(Conflict) as held:
        payout_send(actor=SYSTEM, payout=payout)

    assert held.value.code == "partner_not_approved"
    assert not fake_stripe.requests


def test_without_stripe_a_connect_payout_waits_for_the_operator(statement, no_stripe):  # noqa: F811
    payout = payout_send(actor=SYSTEM, payout=payout_create(actor=SYSTEM, statement=statement))

    assert payout.status == "pending" and payout.stripe_transfer_id == ""


# --- From real invoices to the partner's account -------------------------------------------
def test_real_invoices_accrue_close_and_pay_out_their_traced_share_less_a_refund(
    paid_app,  # noqa: F811
    customer,  # noqa: F811
    fake_stripe,  # noqa: F811
    settings,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    """Billing's own services make and collect the invoice (the app's price is a line on it),
    revenue_accrue runs for real inside the close, a refund reverses part of the share."""
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650
    settings.INVOICE_GRACE_SECONDS = 3600
    monkeypatch.setattr("marketplace.statements.revenue_accrue", revenue_accrue)
    agreement_create(
        actor=SYSTEM, app=paid_app, basis="app_price", percent="70", starts_on=date(2020, 1, 1)
    )
    card_on_file(customer)
    subscription = subscribe(customer, make_plan(), period_start())
    install_app(paid_app, customer)
    invoice = close_period(subscription)
    payments.on_invoice_finalized(invoice.pk)  # charged on the fake Stripe
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(
            actor=SYSTEM, invoice=invoice, amount=Decimal("10.00"), reason="Outage", refund=True
        )
    month = timezone.now().date().replace(day=1)

    [statement] = statements_close(month=month, now=month_bounds(month)[1])

    app_line = InvoiceLine.objects.get(invoice=invoice, addon__isnull=False)
    earning, reversal = statement_lines(statement=statement)
    assert earning.invoice_line_id == reversal.invoice_line_id == str(app_line.pk)
    assert (earning.invoice_number, reversal.credit_note_number) == (invoice.number, note.number)
    assert earning.amount == round_money(app_line.amount * Decimal("0.7"), "USD")
    assert statement.closing_balance == earning.amount + reversal.amount
    assert statement.payable == statement.closing_balance > 0

    paid = payout_send(actor=SYSTEM, payout=payout_create(actor=SYSTEM, statement=statement))

    assert paid.status == "paid"
    assert fake_stripe.transfers[paid.stripe_transfer_id]["amount"] == int(statement.payable * 100)


# --- By bank, recorded by the operator --------------------------------------------------------
def test_a_bank_transfer_stays_pending_until_the_operator_marks_it_paid(
    statement,
    fake_stripe,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    repay_to(statement.partner, payout_method="bank_transfer", payout_reference="ACME-PARTNER-7")
    operator = UserFactory(is_staff=True)
    payout = payout_create(actor=SYSTEM, statement=statement)

    assert payout_send(actor=SYSTEM, payout=payout).status == "pending"
    assert not fake_stripe.requests
    with django_capture_on_commit_callbacks(execute=True):
        paid = payout_mark_paid(
            actor=Actor(user=operator), payout=payout, reference=" TRF-2026-12-004 "
        )

    assert (paid.status, paid.reference, paid.recorded_by) == ("paid", "TRF-2026-12-004", operator)
    assert paid.method == "bank_transfer" and paid.destination == "ACME-PARTNER-7"
    assert "TRF-2026-12-004" in mail.outbox[0].body
    with pytest.raises(Conflict):
        payout_mark_paid(actor=SYSTEM, payout=paid, reference="again")


@pytest.mark.parametrize(
    ("reference", "code"),
    [("", "reference_required"), ("  ", "reference_required"), ("x" * 201, "reference_too_long")],
)
def test_marking_paid_needs_a_reference(statement, no_stripe, reference, code):  # noqa: F811
    payout = payout_create(actor=SYSTEM, statement=statement)

    with pytest.raises(InvalidInput) as refused:
        payout_mark_paid(actor=SYSTEM, payout=payout, reference=reference)

    assert refused.value.code == code
    payout.refresh_from_db()
    assert payout.status == "pending"


# --- The fake's transfers endpoint, through the real library -----------------------------------
@pytest.mark.parametrize(
    ("amount", "destination", "message"),
    [
        (Decimal("0.00"), ACCOUNT, "greater than or equal to 1"),
        (Decimal("1.00"), "ba_123", "No such destination"),
    ],
)
def test_stripe_refuses_a_transfer_it_cannot_make(fake_stripe, amount, destination, message):  # noqa: F811
    result = stripe_api.transfer_create(
        amount=amount,
        currency="USD",
        destination=destination,
        transfer_group="PS-TEST",
        metadata={},
        idempotency_key="test-refused",
    )
    assert not result.succeeded and message in result.failure_message
    assert not fake_stripe.transfers


# --- The monthly task ----------------------------------------------------------------------
def test_the_monthly_task_closes_the_month_and_pays_each_statement(
    statement,
    fake_stripe,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr("django.utils.timezone.now", lambda: AFTER_NOVEMBER)
    result = close_partner_statements.run(month="2026-11-01")
    again = close_partner_statements.run(month="2026-11")

    assert result == {"month": "2026-11-01", "statements": 1, "paid": 1}
    assert again == {"month": "2026-11-01", "statements": 1, "paid": 0}
    assert Payout.objects.get().status == "paid"
    assert len(fake_stripe.transfers) == 1


def test_the_monthly_task_closes_the_previous_month_by_default(monkeypatch, db):
    closed = []
    monkeypatch.setattr(
        "marketplace.statements.statements_close",
        lambda *, month, **_: closed.append(month) or [],
    )
    monkeypatch.setattr("django.utils.timezone.now", lambda: datetime(2027, 1, 1, 3, tzinfo=UTC))

    assert close_partner_statements.run()["month"] == "2026-12-01"
    assert closed == [date(2026, 12, 1)]


# --- Admin ---------------------------------------------------------------------------------
@pytest.fixture
def operator(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_the_operator_sends_and_marks_payouts_from_admin(client, operator, statement, no_stripe):  # noqa: F811
    payout = payout_create(actor=SYSTEM, statement=statement)
    changelist = reverse("admin:marketplace_payout_changelist")

    assert client.get(changelist).status_code == 200
    response = client.post(
        changelist,
        {"action": "send", "_selected_action": [payout.pk], "reference": ""},
        follow=True,
    )
    assert "Mark paid" in response.content.decode()
    payout.refresh_from_db()
    assert payout.status == "pending"

    client.post(
        changelist, {"action": "mark_paid", "_selected_action": [payout.pk], "reference": "TRF-1"}
    )
    payout.refresh_from_db()
    assert (payout.status, payout.reference, payout.recorded_by) == ("paid", "TRF-1", operator)
    entry = AuditLogEntry.objects.get(action="payout.paid")
    assert entry.actor_user == operator


def test_the_operator_closes_a_month_and_reads_statements_in_admin(client, operator, ledger):  # noqa: F811
    ledger.earning("100.00", "2026-10-03")
    close_url = reverse("admin:marketplace_partnerstatement_close")

    assert client.get(reverse("admin:marketplace_partnerstatement_changelist")).status_code == 200
    assert client.get(close_url).status_code == 200
    client.post(close_url, {"month": "2026-10-17"})

    statement = PartnerStatement.objects.get()
    assert statement.number == "PS-2026-10-0001"
    assert AuditLogEntry.objects.get(action="partner_statement.closed").actor_user == operator
    assert (
        client.get(
            reverse("admin:marketplace_partnerstatement_change", args=[statement.pk])
        ).status_code
        == 200
    )
    document = client.get(
        reverse("admin:marketplace_partnerstatement_document", args=[statement.pk])
    )
    assert "Partner statement PS-2026-10-0001" in document.content.decode()
    export = client.get(reverse("admin:marketplace_partnerstatement_csv", args=[statement.pk]))
    assert b"PS-2026-10-0001" in b"".join(export.streaming_content)


def test_closing_a_month_that_has_not_ended_in_admin_says_why(client, operator):
    today = datetime.now(UTC).date()
    response = client.post(
        reverse("admin:marketplace_partnerstatement_close"),
        {"month": today.isoformat()},
        follow=True,
    )
    assert "has not ended yet" in response.content.decode()
    assert not PartnerStatement.objects.exists()


def test_staff_without_permissions_cannot_close_months(client, db):
    client.force_login(UserFactory(is_staff=True))
    response = client.post(
        reverse("admin:marketplace_partnerstatement_close"), {"month": "2026-11-01"}
    )
    assert response.status_code == 403
