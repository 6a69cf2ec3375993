"""Period close and invoices (BILL-1..3, BILL-5): one invoice per period however often the
close runs, invoice = quote, late usage as adjustments, time zones, numbering, tax, credit
notes and state changes."""

import itertools
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.catalog import plan_create
from billing.ingest import usage_ingest
from billing.invoicing import (
    billing_run,
    credit_note_create,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_void,
)
from billing.models import (
    BillingProfile,
    Coupon,
    CreditGrant,
    Invoice,
    InvoiceLine,
    Plan,
    Subscription,
    TaxRate,
)
from billing.quotes import Segment, TaxSpec, build_quote
from billing.subscriptions import subscription_cancel, subscription_subscribe
from common.errors import Conflict, InvalidInput
from portal.audit import Actor
from tests.factories import OrganizationFactory

SYSTEM = Actor.system("test")
D = Decimal


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _old_usage(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650
    settings.INVOICE_GRACE_SECONDS = 3600


def make_plan(code="metered", *, base_fee="10.00", **extra) -> Plan:
    body = {
        "code": code,
        "name": code.title(),
        "base_fee": base_fee,
        "charges": [
            {
                "meter": "requests",
                "model": "graduated",
                "free_units": "100",
                "tiers": [
                    {"up_to": "1000", "unit_amount": "0.01"},
                    {"up_to": None, "unit_amount": "0.005"},
                ],
            }
        ],
    }
    return plan_create(actor=SYSTEM, body={**body, **extra})


def subscribe(org, plan: Plan, when: datetime, **extra) -> Subscription:
    return subscription_subscribe(actor=SYSTEM, organization=org, plan=plan, now=when, **extra)


def record(org, quantity, when: datetime, *, ident: str | None = None, endpoint=None) -> None:
    event = {
        "id": ident or f"r-{when.isoformat()}-{quantity}",
        "meter": "requests",
        "customer": org.slug,
        "quantity": str(quantity),
        "timestamp": when.isoformat(),
    }
    if endpoint:
        event["properties"] = {}
    result = usage_ingest(events=[event])
    assert result.accepted == 1, result.rejected


def usage_lines(invoice) -> list[InvoiceLine]:
    return list(invoice.lines.filter(kind="usage"))


# --- Period close ------------------------------------------------------------------------------
def test_close_makes_one_draft_per_period_and_moves_the_subscription_on(org, meters):
    plan = make_plan()
    subscription = subscribe(org, plan, at(2026, 1, 15, 12))
    record(org, 600, at(2026, 1, 20))
    result = billing_run(as_of=at(2026, 2, 15, 12, 30))
    assert len(result.closed) == 1 and result.finalized == []
    invoice = result.closed[0]
    assert invoice.status == "draft" and invoice.number is None
    assert (invoice.period_start, invoice.period_end) == (at(2026, 1, 15, 12), at(2026, 2, 15, 12))
    [line] = usage_lines(invoice)
    assert line.quantity == 600
    assert line.amount == D("5.00")  # 500 billable x 0.01
    assert invoice.total == D("15.00")  # with the 10.00 base fee
    subscription.refresh_from_db()
    assert subscription.current_period_start == at(2026, 2, 15, 12)
    assert subscription.current_period_end == at(2026, 3, 15, 12)


def test_running_the_close_twice_yields_one_invoice(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    first = billing_run(as_of=at(2026, 2, 15, 1))
    again = billing_run(as_of=at(2026, 2, 15, 1))
    assert len(first.closed) == 1 and again.closed == []
    assert Invoice.objects.filter(organization=org).count() == 1


def test_the_close_catches_up_every_missed_period(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 31))
    result = billing_run(as_of=at(2026, 5, 1))
    starts = [invoice.period_start for invoice in result.closed]
    # Anniversary on the 31st: the last day of shorter months.
    assert starts == [at(2026, 1, 31), at(2026, 2, 28), at(2026, 3, 31)]
    assert Invoice.objects.filter(organization=org).count() == 3
    assert len(result.finalized) == 3  # each one's grace hour ended before May 1


def test_a_second_invoice_for_a_period_is_refused_by_the_database(org, meters):
    from django.db import IntegrityError, transaction

    subscribe(org, make_plan(), at(2026, 1, 15))
    [invoice] = billing_run(as_of=at(2026, 2, 15, 1)).closed
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            organization=org,
            subscription=invoice.subscription,
            currency="USD",
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            plan="x",
            plan_version=1,
            usage_measured_at=invoice.usage_measured_at,
            finalize_after=invoice.finalize_after,
        )


@pytest.mark.django_db(transaction=True)
def test_two_workers_closing_at_once_yield_one_invoice_per_period(meters):
    org = OrganizationFactory()
    subscribe(org, make_plan(), at(2026, 1, 15))
    errors, barrier = [], threading.Barrier(4)

    def worker():
        try:
            barrier.wait()
            billing_run(as_of=at(2026, 4, 16))
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    invoices = Invoice.objects.filter(organization=org).order_by("period_start")
    assert [i.period_start for i in invoices] == [at(2026, 1, 15), at(2026, 2, 15), at(2026, 3, 15)]
    numbers = sorted(i.number for i in invoices)
    assert numbers == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]


def test_run_billing_command(org, meters, capsys):
    subscribe(org, make_plan(), at(2026, 1, 15))
    call_command("run_billing", "--as-of", "2026-02-15T02:00:00Z")
    out = capsys.readouterr().out
    assert "1 period(s) closed, 1 invoice(s) finalized" in out
    call_command("run_billing", "--as-of", "2026-02-15T02:00:00Z")
    assert "0 period(s) closed, 0 invoice(s) finalized" in capsys.readouterr().out
    assert Invoice.objects.get(organization=org).status == "open"


@pytest.mark.parametrize("value", ["yesterday", "2026-12-01T00:00:00"])
def test_run_billing_refuses_a_bad_instant(db, value):
    with pytest.raises(CommandError):
        call_command("run_billing", "--as-of", value)


def test_trial_ends_and_canceled_subscription_ends_at_period_end(org, meters):
    plan = make_plan(trial_days=7)
    subscription = subscribe(org, plan, at(2026, 1, 1))
    assert subscription.status == "trialing"
    billing_run(as_of=at(2026, 1, 9))
    subscription.refresh_from_db()
    assert subscription.status == "active"
    subscription_cancel(actor=SYSTEM, subscription=subscription)
    [invoice] = billing_run(as_of=at(2026, 2, 1, 2)).closed
    subscription.refresh_from_db()
    assert subscription.status == "canceled" and subscription.canceled_at == at(2026, 2, 1)
    # 7 of 31 days were trial: the base fee covers the other 24.
    [base] = invoice.lines.filter(kind="base_fee")
    assert base.amount == D("7.74")  # 10.00 x 24/31
    assert billing_run(as_of=at(2026, 6, 1)).closed == []


# --- Invoice = quote ---------------------------------------------------------------------------
def test_invoice_equals_the_quote_for_the_same_usage(org, meters):
    plan = make_plan()
    subscribe(org, plan, at(2026, 3, 1))
    for day, quantity in ((2, 250), (10, 1234), (28, 77)):
        record(org, quantity, at(2026, 3, day))
    [invoice] = billing_run(as_of=at(2026, 4, 1, 2)).finalized
    usage = {"requests": D(1561)}
    quote = build_quote(segments=[Segment(version=plan.current_version(), usage=usage)])
    assert invoice.total == quote.total
    assert [line.amount for line in invoice.lines.all()] == [line.amount for line in quote.lines]
    assert sum(line.amount for line in invoice.lines.all()) == invoice.total


# --- Finalization and numbering --------------------------------------------------------------
def test_finalization_numbers_without_gaps_and_freezes_the_customer(org, other_org, meters):
    plan = make_plan()
    BillingProfile.objects.create(
        organization=org,
        legal_name="Acme GmbH",
        address_line1="Hauptstr. 1",
        city="Berlin",
        postal_code="10115",
        country="DE",
        tax_id="DE123456789",
    )
    subscribe(org, plan, at(2026, 1, 15))
    subscribe(other_org, plan, at(2026, 1, 20))
    result = billing_run(as_of=at(2026, 2, 21))
    numbers = sorted(invoice.number for invoice in result.finalized)
    assert numbers == ["INV-2026-000001", "INV-2026-000002"]
    invoice = Invoice.objects.get(organization=org)
    assert invoice.status == "open" and invoice.issued_at == at(2026, 2, 21)
    assert invoice.due_at == at(2026, 3, 7)
    assert invoice.customer["name"] == "Acme GmbH" and invoice.customer["tax_id"] == "DE123456789"
    assert "10115 Berlin" in invoice.customer["address"]


def test_a_draft_still_takes_late_usage_during_the_grace_period(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    [draft] = billing_run(as_of=at(2026, 2, 15, 0, 10)).closed
    assert usage_lines(draft)[0].quantity == 0
    record(org, 300, at(2026, 2, 14, 23, 59))  # arrives inside the grace hour
    [invoice] = billing_run(as_of=at(2026, 2, 15, 1)).finalized
    assert usage_lines(invoice)[0].quantity == 300
    assert invoice.total == D("12.00")


def test_a_zero_invoice_is_paid_at_once(org, meters):
    subscribe(org, make_plan(base_fee="0"), at(2026, 1, 15))
    [invoice] = billing_run(as_of=at(2026, 2, 16)).finalized
    assert invoice.status == "paid" and invoice.total == 0


def test_credit_is_drawn_when_the_invoice_is_finalized(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    CreditGrant.objects.create(organization=org, amount=D("4"), remaining=D("4"))
    [invoice] = billing_run(as_of=at(2026, 2, 16)).finalized
    assert invoice.credits == D("4.00") and invoice.total == D("6.00")
    assert CreditGrant.objects.get(organization=org).remaining == 0


# --- Late usage ----------------------------------------------------------------------------------
def test_late_usage_after_finalization_is_an_adjustment_on_the_next_invoice(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    record(org, 1000, at(2026, 1, 20))
    [january] = billing_run(as_of=at(2026, 2, 16)).finalized
    assert usage_lines(january)[0].amount == D("9.00")  # 900 billable x 0.01
    record(org, 300, at(2026, 2, 1), ident="late-1")  # January's period, after its invoice
    [february] = billing_run(as_of=at(2026, 3, 16)).finalized
    [adjustment] = february.lines.filter(kind="adjustment")
    # 1,300 now known, 1,200 billable: 1,000 x 0.01 + 200 x 0.005 = 11.00; 9.00 was billed.
    assert adjustment.quantity == 300 and adjustment.amount == D("2.00")
    assert adjustment.adjusts == usage_lines(january)[0]
    assert january.number in adjustment.description
    assert february.total == D("12.00")
    # Billed once: the next invoice does not bill it again.
    [march] = billing_run(as_of=at(2026, 4, 16)).finalized
    assert not march.lines.filter(kind="adjustment").exists()


def test_late_usage_is_adjusted_once_when_the_close_catches_up_on_missed_periods(
    org, meters, settings
):
    subscribe(org, make_plan(), at(2026, 1, 1))
    record(org, 600, at(2026, 1, 10))
    billing_run(as_of=at(2026, 2, 1, 2))
    record(org, 300, at(2026, 1, 20), ident="late-jan")
    settings.USAGE_LATE_ARRIVAL_DAYS = 35  # the default: longer than February
    # The workers were down: February and March close and finalize in one run.
    finalized = billing_run(as_of=at(2026, 4, 1, 2)).finalized
    assert len(finalized) == 2
    [adjustment] = InvoiceLine.objects.filter(kind="adjustment")
    assert adjustment.quantity == 300
    assert adjustment.invoice.period_start == at(2026, 2, 1)


def test_usage_during_a_trial_is_never_billed_later_as_late_usage(org, meters):
    subscribe(org, make_plan(trial_days=40), at(2026, 1, 1))
    record(org, 600, at(2026, 1, 10))  # inside the trial: free
    [january] = billing_run(as_of=at(2026, 2, 1, 2)).finalized
    assert january.total == 0
    [february] = billing_run(as_of=at(2026, 3, 1, 2)).finalized
    assert not february.lines.filter(kind="adjustment").exists()
    [usage] = usage_lines(january)
    assert usage.quantity == 0 and usage.period_start == usage.period_end  # no evidence rows


# --- Time zones ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "zone,calendar",
    [("America/Los_Angeles", True), ("America/Los_Angeles", False), ("Asia/Kolkata", True)],
)
def test_each_event_is_billed_exactly_once_across_dst_and_month_ends(org, meters, zone, calendar):
    from zoneinfo import ZoneInfo

    BillingProfile.objects.create(organization=org, timezone=zone)
    plan = make_plan(base_fee="0", calendar_billing=calendar)
    subscribe(org, plan, at(2026, 2, 20, 17, 30))
    tz = ZoneInfo(zone)
    local = [
        datetime(2026, 2, 28, 23, 59, 59, tzinfo=tz),
        datetime(2026, 3, 1, 0, 0, 0, tzinfo=tz),
        datetime(2026, 3, 8, 1, 59, tzinfo=tz),  # just before the US spring-forward
        datetime(2026, 3, 8, 3, 0, tzinfo=tz),
        datetime(2026, 3, 31, 23, 59, 59, tzinfo=tz),
        datetime(2026, 4, 1, 0, 0, tzinfo=tz),
        datetime(2026, 4, 20, 16, 0, tzinfo=tz),
        datetime(2026, 10, 31, 23, 30, tzinfo=tz),
        datetime(2026, 11, 1, 1, 30, tzinfo=tz),  # the repeated hour of the US fall-back
    ]
    for n, moment in enumerate(local):
        record(org, 10**n, moment, ident=f"tz-{n}")
    invoices = billing_run(as_of=at(2026, 12, 2)).closed
    billed = sum(line.quantity for invoice in invoices for line in usage_lines(invoice))
    assert billed == sum(10**n for n in range(len(local)))
    periods = [(invoice.period_start, invoice.period_end) for invoice in invoices]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(periods))
    starts = [start.astimezone(tz) for start, _ in periods[1:]]
    if calendar:
        assert all((s.day, s.hour, s.minute) == (1, 0, 0) for s in starts)
    else:
        # 17:30 UTC on Feb 20 is 09:30 in Los Angeles, whatever the offset that day.
        assert all((s.day, s.hour, s.minute) == (20, 9, 30) for s in starts)


def test_a_time_zone_change_moves_the_boundary_without_a_short_period(org, meters):
    from billing.profiles import profile_update

    subscription = subscribe(org, make_plan(), at(2026, 1, 10, 12))
    billing_run(as_of=at(2026, 2, 10, 13))
    profile_update(actor=SYSTEM, organization=org, timezone="Asia/Tokyo")
    [invoice] = billing_run(as_of=at(2026, 3, 10, 13)).closed
    assert invoice.period_end - invoice.period_start == timedelta(days=28)
    subscription.refresh_from_db()
    # Anniversary at 21:00 in Tokyo from now on: 12:00 UTC, as before (Tokyo has no DST).
    assert subscription.current_period_end == at(2026, 4, 10, 12)
    profile_update(actor=SYSTEM, organization=org, timezone="America/Los_Angeles")
    [invoice] = billing_run(as_of=at(2026, 4, 10, 13)).closed
    subscription.refresh_from_db()
    # 04:00 in Los Angeles (PDT) is 11:00 UTC: the period is an hour shorter, not an hour long.
    assert subscription.current_period_end == at(2026, 5, 10, 11)


# --- Tax -----------------------------------------------------------------------------------------
def test_exclusive_and_inclusive_tax_by_country_and_region(org, other_org, meters):
    TaxRate.objects.create(name="Sales tax", country="US", region="CA", percent=D("7.25"))
    TaxRate.objects.create(name="Sales tax", country="US", percent=D("5"))
    TaxRate.objects.create(name="VAT", country="DE", percent=D("19"), inclusive=True)
    BillingProfile.objects.create(organization=org, country="US", region="CA")
    BillingProfile.objects.create(organization=other_org, country="DE")
    plan = make_plan(base_fee="100.00")
    subscribe(org, plan, at(2026, 1, 15))
    subscribe(other_org, plan, at(2026, 1, 15))
    billing_run(as_of=at(2026, 2, 16))
    us = Invoice.objects.get(organization=org)
    assert us.tax == D("7.25") and us.total == D("107.25")
    assert us.tax_rate == {"name": "Sales tax", "percent": "7.2500", "inclusive": False}
    de = Invoice.objects.get(organization=other_org)
    assert de.tax == D("15.97") and de.total == D("100.00")  # 100 x 19/119, included


# --- Credit notes, void, uncollectible ----------------------------------------------------------
def test_credit_notes_reduce_what_is_due_then_become_credit(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    [invoice] = billing_run(as_of=at(2026, 2, 16)).finalized
    note = credit_note_create(actor=SYSTEM, invoice=invoice, amount=D("4"), reason="Outage")
    assert note.number == "CN-" + str(note.created_at.year) + "-000001"
    invoice.refresh_from_db()
    assert invoice.amount_due == D("6.00") and invoice.status == "open"
    credit_note_create(actor=SYSTEM, invoice=invoice, amount=D("6"), reason="Goodwill")
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.amount_due == 0
    with pytest.raises(InvalidInput) as refused:
        credit_note_create(actor=SYSTEM, invoice=invoice, amount=D("0.01"), reason="More")
    assert refused.value.code == "credit_exceeds_invoice"
    with pytest.raises(InvalidInput):
        credit_note_create(actor=SYSTEM, invoice=invoice, amount=D("-1"), reason="x")


def test_void_and_uncollectible_follow_the_state_machine(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    CreditGrant.objects.create(organization=org, amount=D("3"), remaining=D("3"))
    [first] = billing_run(as_of=at(2026, 2, 16)).finalized
    invoice_void(actor=SYSTEM, invoice=first)
    first.refresh_from_db()
    assert first.status == "void"
    assert CreditGrant.objects.filter(organization=org, remaining=D("3")).exists()  # given back
    with pytest.raises(Conflict):
        invoice_void(actor=SYSTEM, invoice=first)
    with pytest.raises(Conflict):
        credit_note_create(actor=SYSTEM, invoice=first, amount=D("1"), reason="x")
    [second] = billing_run(as_of=at(2026, 3, 16)).finalized
    invoice_mark_uncollectible(actor=SYSTEM, invoice=second)
    second.refresh_from_db()
    assert second.status == "uncollectible"
    with pytest.raises(Conflict):
        invoice_mark_uncollectible(actor=SYSTEM, invoice=second)


def test_finalizing_twice_is_a_no_op(org, meters):
    subscribe(org, make_plan(), at(2026, 1, 15))
    [draft] = billing_run(as_of=at(2026, 2, 15, 0, 1)).closed
    assert invoice_finalize(invoice_id=draft.pk) is not None
    assert invoice_finalize(invoice_id=draft.pk) is None
    draft.refresh_from_db()
    assert draft.number == "INV-" + str(draft.issued_at.year) + "-000001"


def test_org_without_usage_past_first_invoice_keeps_monthly_cadence(org, meters):
    subscription = subscribe(org, make_plan(), at(2026, 1, 15))
    billing_run(as_of=at(2026, 2, 16))
    subscription.refresh_from_db()
    assert subscription.current_period_start == at(2026, 2, 15)
    assert timedelta(days=27) < subscription.current_period_end - at(2026, 2, 15)


# --- Invoice = quote, for any plan and usage (hypothesis) ---------------------------------------


_codes = count()
money = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def charges(draw):
    model = draw(st.sampled_from(["per_unit", "graduated", "volume", "package"]))
    charge = {"meter": "requests", "model": model, "free_units": str(draw(st.integers(0, 50)))}
    if model == "per_unit":
        charge["unit_amount"] = str(draw(money))
    elif model == "package":
        charge["package_size"] = str(draw(st.integers(1, 100)))
        charge["package_amount"] = str(draw(money))
    else:
        bounds = sorted(set(draw(st.lists(st.integers(1, 500), max_size=3))))
        charge["tiers"] = [
            {"up_to": str(b), "unit_amount": str(draw(money)), "flat_amount": str(draw(money))}
            for b in bounds
        ] + [{"up_to": None, "unit_amount": str(draw(money))}]
    if draw(st.booleans()):
        charge["minimum"] = str(draw(money))
    return charge


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    charge=charges(),
    base_fee=money,
    usage=st.lists(st.tuples(st.integers(0, 27), st.integers(1, 400)), max_size=6),
    percent_off=st.one_of(st.none(), st.integers(1, 100)),
    tax=st.one_of(st.none(), st.tuples(st.decimals(0, 30, places=2), st.booleans())),
    credit=st.one_of(st.none(), money),
)
def test_any_invoice_equals_the_quote_for_its_usage(
    meters, charge, base_fee, usage, percent_off, tax, credit
):
    code = f"prop-{next(_codes)}"
    plan = plan_create(
        actor=SYSTEM,
        body={"code": code, "name": code, "base_fee": str(base_fee), "charges": [charge]},
    )
    org = OrganizationFactory(slug=code)
    coupon = None
    if percent_off:
        coupon = Coupon.objects.create(
            code=code, name=code, kind="percent", percent_off=percent_off
        )
    if tax:
        TaxRate.objects.filter(country="FR").delete()
        TaxRate.objects.create(name="TVA", country="FR", percent=tax[0], inclusive=tax[1])
        BillingProfile.objects.create(organization=org, country="FR")
    if credit:
        CreditGrant.objects.create(organization=org, amount=credit, remaining=credit)
    subscription_subscribe(
        actor=SYSTEM,
        organization=org,
        plan=plan,
        now=at(2026, 2, 1),
        coupon_code=coupon.code if coupon else None,
    )
    for n, (day, quantity) in enumerate(usage):
        record(org, quantity, at(2026, 2, 1 + day, 12), ident=f"{code}-{n}")
    [invoice] = billing_run(as_of=at(2026, 3, 1, 2)).finalized
    quote = build_quote(
        segments=[
            Segment(
                version=plan.current_version(),
                usage={"requests": D(sum(q for _d, q in usage))},
            )
        ],
        coupon=coupon,
        credits_available=credit or D(0),
        tax=TaxSpec("TVA", tax[0], tax[1]) if tax else None,
    )
    assert invoice.total == quote.total
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.credits) == (
        quote.subtotal,
        quote.discount,
        quote.tax,
        quote.credits,
    )
    amounts = list(invoice.lines.order_by("position").values_list("amount", flat=True))
    assert amounts == [line.amount for line in quote.lines]
    assert sum(amounts, D(0)) == invoice.total


# --- Pay in advance ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_pay_in_advance_bills_the_fee_at_the_start_and_each_next_fee_at_close(meters):
    org = OrganizationFactory()
    plan = make_plan("advance", pay_in_advance=True)
    subscription = subscribe(org, plan, at(2026, 1, 15))
    [opening] = Invoice.objects.filter(organization=org)
    assert opening.kind == "opening" and opening.status == "open"
    assert [(line.kind, line.amount) for line in opening.lines.all()] == [("base_fee", D("10.00"))]
    record(org, 600, at(2026, 1, 20))
    [january] = billing_run(as_of=at(2026, 2, 16)).finalized
    kinds = {line.kind: line.amount for line in january.lines.all()}
    assert kinds["base_fee"] == D("10.00") and kinds["advance_applied"] == D("-10.00")
    assert kinds["base_fee_advance"] == D("10.00") and kinds["usage"] == D("5.00")
    advance = january.lines.get(kind="base_fee_advance")
    assert (advance.period_start, advance.period_end) == (at(2026, 2, 15), at(2026, 3, 15))
    assert january.total == D("15.00")  # this period's usage and next period's fee
    subscription_cancel(actor=SYSTEM, subscription=subscription)
    [february] = billing_run(as_of=at(2026, 3, 16)).finalized
    kinds = {line.kind: line.amount for line in february.lines.all()}
    assert kinds["advance_applied"] == D("-10.00") and "base_fee_advance" not in kinds
    assert february.total == D("0.00")  # the last period was paid in advance; no usage


def test_a_credit_note_that_settles_an_invoice_emits_invoice_paid(org, meters):
    from webhooks.models import Event

    subscribe(org, make_plan(), at(2026, 1, 15))
    [invoice] = billing_run(as_of=at(2026, 2, 16)).finalized
    credit_note_create(actor=SYSTEM, invoice=invoice, amount=invoice.total, reason="Goodwill")
    [paid] = Event.objects.filter(organization=org, type="invoice.paid")
    assert paid.payload["data"]["number"] == invoice.number
