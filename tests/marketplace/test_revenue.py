"""Revenue share (MKT-4): agreements and their rules, and accrual from real invoices made by
billing's own services: earnings only from paid invoices, each traced to its invoice line,
reversed pro rata by credit notes (a Stripe refund included), never twice."""

import threading
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from billing import payments
from billing.ingest import usage_ingest
from billing.invoicing import credit_note_create, invoice_void
from billing.models import Coupon, InvoiceLine
from billing.pricing.money import round_money
from common.errors import Conflict, InvalidInput
from marketplace.models import PartnerTier, RevenueShareAgreement, RevenueShareEntry
from marketplace.revenue import agreement_create, agreement_end, revenue_accrue
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.billing.conftest import fake_stripe, fake_stripe_server  # noqa: F401 -- fixtures
from tests.billing.test_invoicing import make_plan, subscribe
from tests.billing.test_payments import card_on_file
from tests.factories import ApiKeyFactory
from tests.marketplace.test_apps import app, partner  # noqa: F401 -- fixtures
from tests.marketplace.test_paid_apps import (  # noqa: F401 -- fixtures and helpers
    close_period,
    customer,
    install_app,
    paid_app,
    period_start,
)

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
D = Decimal
SINCE = date(2020, 1, 1)  # agreements in force for every period these tests make


@pytest.fixture(autouse=True)
def _billing_settings(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650
    settings.INVOICE_GRACE_SECONDS = 3600


def price_agreement(app, percent="70", **extra) -> RevenueShareAgreement:  # noqa: F811
    return agreement_create(
        actor=SYSTEM, app=app, basis="app_price", percent=percent, starts_on=SINCE, **extra
    )


def paid_invoice_with_the_app(paid_app, customer, *, coupon_code=None):  # noqa: F811
    subscription = subscribe(customer, make_plan(), period_start(), coupon_code=coupon_code)
    install_app(paid_app, customer)
    invoice = close_period(subscription)
    return payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice)


def entries(**filters) -> list[RevenueShareEntry]:
    return list(RevenueShareEntry.objects.filter(**filters).order_by("kind", "recognized_at", "pk"))


# --- Agreements ---------------------------------------------------------------------------
def test_an_agreement_takes_the_partners_tier_share_by_default(paid_app):  # noqa: F811
    assert paid_app.partner.tier.code == "registered"
    agreement = agreement_create(actor=SYSTEM, app=paid_app, basis="app_price", starts_on=SINCE)
    assert agreement.percent == D("70.00") and agreement.ends_on is None
    entry = AuditLogEntry.objects.get(action="revenue_agreement.created")
    assert entry.changes["percent"] == "70.00" and entry.changes["basis"] == "app_price"


def test_an_explicit_share_overrides_the_tier(paid_app):  # noqa: F811
    assert price_agreement(paid_app, percent="82.5").percent == D("82.50")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"basis": "everything"}, "invalid_basis"),
        ({"percent": "100.01"}, "invalid_percent"),
        ({"percent": "-1"}, "invalid_percent"),
        ({"percent": "12.345"}, "invalid_percent"),
        ({"percent": "lots"}, "invalid_percent"),
        ({"percent": 70.5}, "invalid_percent"),
        ({"starts_on": "2026-01-01"}, "invalid_date"),
        ({"starts_on": datetime(2026, 1, 1, 12)}, "invalid_date"),
        ({"ends_on": date(2026, 1, 1)}, "invalid_period"),
        ({"ends_on": date(2025, 6, 1)}, "invalid_period"),
    ],
)
def test_bad_agreements_are_refused(paid_app, fields, code):  # noqa: F811
    body = {"basis": "app_price", "percent": "70", "starts_on": date(2026, 1, 1), **fields}
    with pytest.raises(InvalidInput) as error:
        agreement_create(actor=SYSTEM, app=paid_app, **body)
    assert error.value.code == code
    assert not RevenueShareAgreement.objects.exists()


def test_a_partner_without_a_tier_must_be_given_a_share(paid_app):  # noqa: F811
    type(paid_app.partner).objects.filter(pk=paid_app.partner_id).update(tier=None)
    paid_app.partner.refresh_from_db()
    with pytest.raises(InvalidInput) as error:
        agreement_create(actor=SYSTEM, app=paid_app, basis="app_usage", starts_on=SINCE)
    assert error.value.code == "percent_required"


def test_agreements_of_one_app_and_basis_never_overlap(paid_app):  # noqa: F811
    price_agreement(paid_app, ends_on=date(2026, 6, 1))
    with pytest.raises(Conflict) as error:
        agreement_create(actor=SYSTEM, app=paid_app, basis="app_price", starts_on=date(2026, 5, 31))
    assert error.value.code == "agreement_overlaps"
    # The day it ends is free (ends_on is exclusive), and another basis is another matter.
    agreement_create(actor=SYSTEM, app=paid_app, basis="app_price", starts_on=date(2026, 6, 1))
    agreement_create(actor=SYSTEM, app=paid_app, basis="app_usage", starts_on=SINCE)
    with pytest.raises(Conflict):  # before an open-ended one: overlaps it too
        agreement_create(actor=SYSTEM, app=paid_app, basis="app_usage", starts_on=date(2030, 1, 1))


def test_ending_an_agreement_is_audited_and_checked(paid_app):  # noqa: F811
    agreement = price_agreement(paid_app)
    later = agreement_create(
        actor=SYSTEM, app=paid_app, basis="app_usage", starts_on=date(2026, 1, 1)
    )
    with pytest.raises(InvalidInput):
        agreement_end(actor=SYSTEM, agreement=agreement, ends_on=SINCE)
    ended = agreement_end(actor=SYSTEM, agreement=agreement, ends_on=date(2026, 1, 1))
    assert ended.ends_on == date(2026, 1, 1)
    assert AuditLogEntry.objects.filter(action="revenue_agreement.ended").count() == 1
    price_after = agreement_create(
        actor=SYSTEM, app=paid_app, basis="app_price", starts_on=date(2026, 3, 1)
    )
    with pytest.raises(Conflict) as error:  # ended is ended: no reopening, even by a day
        agreement_end(actor=SYSTEM, agreement=agreement, ends_on=date(2026, 1, 2))
    assert error.value.code == "agreement_ended"
    earlier = agreement_end(actor=SYSTEM, agreement=agreement, ends_on=date(2025, 12, 1))
    assert earlier.ends_on == date(2025, 12, 1)  # ending sooner is still an end
    assert later.basis != price_after.basis


def test_an_agreement_cannot_end_before_what_it_already_earned(paid_app, customer):  # noqa: F811
    agreement = price_agreement(paid_app)
    paid_invoice_with_the_app(paid_app, customer)
    assert revenue_accrue() == 1
    with pytest.raises(Conflict) as error:
        agreement_end(actor=SYSTEM, agreement=agreement, ends_on=date(2026, 1, 1))
    assert error.value.code == "agreement_has_entries"
    agreement_end(actor=SYSTEM, agreement=agreement, ends_on=timezone.now().date() + timedelta(1))


# --- Accrual: the app's price -----------------------------------------------------------------
def test_a_paid_invoice_earns_the_partner_its_share_of_the_app_line(
    paid_app,  # noqa: F811
    customer,  # noqa: F811
):
    agreement = price_agreement(paid_app)
    invoice = paid_invoice_with_the_app(paid_app, customer)

    assert revenue_accrue() == 1

    line = invoice.lines.get(kind=InvoiceLine.Kind.ADDON)
    [earning] = entries()
    assert (earning.kind, earning.invoice_id, earning.invoice_line_id) == (
        "earning",
        invoice.pk,
        line.pk,
    )
    assert (earning.partner_id, earning.app_id, earning.organization_id) == (
        paid_app.partner_id,
        paid_app.pk,
        customer.pk,
    )
    assert earning.agreement == agreement and earning.currency == "USD"
    assert (earning.base_amount, earning.percent, earning.amount) == (D("20"), D("70"), D("14"))
    assert earning.amount == round_money(line.amount * D("0.70"), "USD")
    assert earning.recognized_at == invoice.paid_at
    assert earning.detail["invoice"] == invoice.number
    assert earning.detail["line_amount"] == str(line.amount)


def test_accruing_twice_changes_nothing(paid_app, customer):  # noqa: F811
    price_agreement(paid_app)
    paid_invoice_with_the_app(paid_app, customer)
    assert revenue_accrue() == 1
    before = [(e.pk, e.amount) for e in entries()]
    assert revenue_accrue() == 0
    assert [(e.pk, e.amount) for e in entries()] == before


def test_open_void_and_later_paid_invoices_earn_nothing_yet(paid_app, customer):  # noqa: F811
    price_agreement(paid_app)
    subscription = subscribe(customer, make_plan(), period_start())
    install_app(paid_app, customer)
    invoice = close_period(subscription)
    assert invoice.status == "open"
    assert revenue_accrue() == 0  # open: not paid

    paid = payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice)
    assert revenue_accrue(until=paid.paid_at - timedelta(seconds=1)) == 0  # paid after `until`
    assert revenue_accrue(until=paid.paid_at) == 1


def test_a_void_invoice_earns_nothing(paid_app, customer):  # noqa: F811
    price_agreement(paid_app)
    subscription = subscribe(customer, make_plan(), period_start())
    install_app(paid_app, customer)
    invoice_void(actor=SYSTEM, invoice=close_period(subscription))
    assert revenue_accrue() == 0 and not entries()


def test_no_agreement_in_force_on_the_period_start_means_no_share(paid_app, customer):  # noqa: F811
    agreement_create(
        actor=SYSTEM,
        app=paid_app,
        basis="app_price",
        percent="70",
        starts_on=timezone.now().date() + timedelta(days=60),
    )
    paid_invoice_with_the_app(paid_app, customer)
    assert revenue_accrue() == 0


def test_a_coupon_reduces_the_share_pro_rata_and_tax_is_left_out(paid_app, customer):  # noqa: F811
    Coupon.objects.create(code="tenoff", name="10% off", kind="percent", percent_off=D(10))
    price_agreement(paid_app)
    invoice = paid_invoice_with_the_app(paid_app, customer, coupon_code="tenoff")
    assert (invoice.subtotal, invoice.discount) == (D("30"), D("3"))  # 10.00 plan, 20.00 app

    revenue_accrue()

    [earning] = entries()
    assert earning.base_amount == D("18")  # 20.00 x (1 - 3/30)
    assert earning.amount == D("12.60")
    assert earning.detail["net_factor"] == "0.9"


# --- Reversals ----------------------------------------------------------------------------------
def test_a_refund_reverses_the_share_pro_rata(
    paid_app,  # noqa: F811
    customer,  # noqa: F811
    fake_stripe,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    price_agreement(paid_app)
    card_on_file(customer)
    subscription = subscribe(customer, make_plan(), period_start())
    install_app(paid_app, customer)
    invoice = close_period(subscription)
    payments.on_invoice_finalized(invoice.pk)  # charged on the (fake) Stripe
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.total == D("30")
    revenue_accrue()

    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(
            actor=SYSTEM, invoice=invoice, amount=D("10.00"), reason="Outage", refund=True
        )
    note.refresh_from_db()
    assert note.refunded and len(fake_stripe.refunds) == 1

    assert revenue_accrue() == 1
    earning, reversal = entries()
    assert (reversal.kind, reversal.reverses, reversal.credit_note) == ("reversal", earning, note)
    assert reversal.invoice_line_id == earning.invoice_line_id
    assert reversal.amount == D("-4.67")  # 14.00 x 10/30, rounded half up
    assert reversal.base_amount == D("-6.666666666667")
    assert reversal.recognized_at == note.created_at
    assert reversal.detail["credit_note"] == note.number and reversal.detail["refunded"]
    # The partner's total is the sum over its traced lines: 14.00 of the app line, less the
    # refunded third of it.
    total = sum(e.amount for e in entries(partner=paid_app.partner))
    line = InvoiceLine.objects.get(pk=earning.invoice_line_id)
    assert total == round_money(line.amount * D("0.7"), "USD") - D("4.67") == D("9.33")
    assert revenue_accrue() == 0


def test_a_refund_made_in_stripes_dashboard_reverses_the_share_too(
    client,
    paid_app,  # noqa: F811
    customer,  # noqa: F811
    fake_stripe,  # noqa: F811
):
    from billing import stripe_api
    from billing.models import PaymentAttempt
    from tests.billing.fake_stripe import event
    from tests.billing.test_stripe_webhooks import deliver

    price_agreement(paid_app)
    card_on_file(customer)
    subscription = subscribe(customer, make_plan(), period_start())
    install_app(paid_app, customer)
    invoice = close_period(subscription)
    payments.on_invoice_finalized(invoice.pk)
    revenue_accrue()
    attempt = PaymentAttempt.objects.get(invoice=invoice, outcome="succeeded")
    refund = stripe_api._client().v1.refunds.create(
        params={"payment_intent": attempt.stripe_payment_intent_id, "amount": 1000}
    )
    deliver(client, event("refund.created", refund.to_dict()))

    assert revenue_accrue() == 1
    [reversal] = entries(kind="reversal")
    assert reversal.amount == D("-4.67")  # 14.00 x 10/30, as for a refund made in Tollgate
    assert reversal.credit_note.stripe_refund_id == refund.to_dict()["id"]


def test_reversals_never_exceed_the_earning_and_a_full_credit_takes_all_of_it(
    paid_app,  # noqa: F811
    customer,  # noqa: F811
):
    price_agreement(paid_app)
    invoice = paid_invoice_with_the_app(paid_app, customer)  # 30.00 total; earning 14.00
    revenue_accrue()
    for amount in ("10.00", "10.00"):
        credit_note_create(actor=SYSTEM, invoice=invoice, amount=D(amount), reason="x")
    revenue_accrue()
    credit_note_create(actor=SYSTEM, invoice=invoice, amount=D("10.00"), reason="x")
    assert revenue_accrue() == 1

    earning = entries(kind="earning")[0]
    reversals = entries(kind="reversal")
    # Each third on the running total: 4.67, then 9.33 - 4.67, then 14.00 - 9.33.
    assert [r.amount for r in reversals] == [D("-4.67"), D("-4.66"), D("-4.67")]
    assert sum(r.amount for r in reversals) == -earning.amount
    assert sum(r.base_amount for r in reversals) == -earning.base_amount


def test_what_prepaid_credit_paid_stays_earned_when_the_rest_is_refunded(
    paid_app,  # noqa: F811
    customer,  # noqa: F811
):
    from billing.credits import credit_grant_create

    price_agreement(paid_app)
    credit_grant_create(
        actor=SYSTEM, organization=customer, amount=D("12.00"), currency="USD", reason="Promo"
    )
    invoice = paid_invoice_with_the_app(paid_app, customer)
    assert (invoice.credits, invoice.total) == (D("12.00"), D("18.00"))
    revenue_accrue()
    earning = entries(kind="earning")[0]
    assert earning.amount == D("14.00")  # credit is a way of paying: the base is not cut

    credit_note_create(actor=SYSTEM, invoice=invoice, amount=D("18.00"), reason="Refund")
    revenue_accrue()
    [reversal] = entries(kind="reversal")
    # All that was paid in money back: 18/30 of the share, the 12/30 paid by credit stays.
    assert reversal.amount == D("-8.40")
    assert sum(e.amount for e in entries()) == D("5.60")


# --- Accrual: usage made by the app -------------------------------------------------------------
def record(organization, quantity, when, *, key=None, ident) -> None:
    event = {
        "id": ident,
        "meter": "requests",
        "quantity": str(quantity),
        "timestamp": when.isoformat(),
    }
    if key is None:
        event["customer"] = organization.slug
    else:
        event["key_id"] = str(key.id)
    result = usage_ingest(events=[event])
    assert result.accepted == 1, result.rejected


def test_the_usage_share_counts_only_the_apps_live_keys(paid_app, customer):  # noqa: F811
    agreement_create(actor=SYSTEM, app=paid_app, basis="app_usage", percent="50", starts_on=SINCE)
    start = period_start()
    subscription = subscribe(customer, make_plan(), start)
    install = install_app(paid_app, customer)
    app_key = ApiKeyFactory(project=install.project, environment="live", app_id=paid_app.pk)
    app_test_key = ApiKeyFactory(project=install.project, environment="test", app_id=paid_app.pk)
    own_key = ApiKeyFactory(project=install.project, environment="live")
    when = start + timedelta(hours=1, minutes=10)
    record(customer, 300, when, key=app_key, ident="app")
    record(customer, 5000, when, key=app_test_key, ident="app-test")  # test mode: not billed
    record(customer, 500, when, key=own_key, ident="own")
    record(customer, 200, when, ident="no-key")
    invoice = payments.invoice_mark_paid(actor=SYSTEM, invoice=close_period(subscription))

    assert revenue_accrue() == 1

    line = invoice.lines.get(kind=InvoiceLine.Kind.USAGE)
    assert (line.quantity, line.amount) == (D("1000"), D("9.00"))  # 900 billable x 0.01
    [earning] = entries()
    assert earning.invoice_line_id == line.pk
    assert earning.base_amount == D("2.70")  # 9.00 x 300/1000
    assert earning.amount == D("1.35")
    assert (earning.detail["app_quantity"], earning.detail["total_quantity"]) == ("300", "1000")
    assert earning.detail["meter"] == "requests"


def test_an_org_whose_app_made_no_calls_gives_no_usage_share(paid_app, customer):  # noqa: F811
    agreement_create(actor=SYSTEM, app=paid_app, basis="app_usage", percent="50", starts_on=SINCE)
    start = period_start()
    subscription = subscribe(customer, make_plan(), start)
    install = install_app(paid_app, customer)
    ApiKeyFactory(project=install.project, environment="live", app_id=paid_app.pk)
    record(customer, 700, start + timedelta(hours=2), ident="own")
    payments.invoice_mark_paid(actor=SYSTEM, invoice=close_period(subscription))
    assert revenue_accrue() == 0


# --- Concurrency --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_make_each_entry_once(paid_app, customer):  # noqa: F811
    price_agreement(paid_app)
    paid_invoice_with_the_app(paid_app, customer)
    made, errors = [], []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            made.append(revenue_accrue())
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(made) == [0, 1]
    assert RevenueShareEntry.objects.count() == 1


# --- The operator's admin -----------------------------------------------------------------------
def test_the_operator_makes_and_ends_an_agreement_in_admin(admin_client, paid_app):  # noqa: F811
    url = reverse("admin:marketplace_revenueshareagreement_add")
    body = {"app": paid_app.pk, "basis": "app_price", "percent": "", "starts_on": "2026-01-01"}
    response = admin_client.post(url, {**body, "ends_on": "", "note": "Launch deal"})
    assert response.status_code == 302
    agreement = RevenueShareAgreement.objects.get()
    assert agreement.percent == D("70.00") and agreement.note == "Launch deal"
    assert AuditLogEntry.objects.filter(action="revenue_agreement.created").count() == 1

    again = admin_client.post(url, {**body, "ends_on": "", "note": ""})
    assert again.status_code == 200 and "already has" in again.content.decode()
    assert RevenueShareAgreement.objects.count() == 1

    change = reverse("admin:marketplace_revenueshareagreement_change", args=[agreement.pk])
    assert admin_client.post(change, {"ends_on": "2026-07-01"}).status_code == 302
    agreement.refresh_from_db()
    assert agreement.ends_on == date(2026, 7, 1)
    assert AuditLogEntry.objects.filter(action="revenue_agreement.ended").count() == 1


def test_entries_are_read_only_in_admin(admin_client, paid_app, customer):  # noqa: F811
    price_agreement(paid_app)
    paid_invoice_with_the_app(paid_app, customer)
    revenue_accrue()
    entry = RevenueShareEntry.objects.get()
    listing = admin_client.get(
        reverse("admin:marketplace_revenueshareentry_changelist"), {"kind": "earning"}
    )
    assert listing.status_code == 200 and "14.00" in listing.content.decode()
    assert admin_client.get(reverse("admin:marketplace_revenueshareentry_add")).status_code == 403
    change = reverse("admin:marketplace_revenueshareentry_change", args=[entry.pk])
    admin_client.post(change, {"amount": "999"})
    entry.refresh_from_db()
    assert entry.amount == D("14")
    assert PartnerTier.objects.exists()
