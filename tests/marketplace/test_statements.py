"""Monthly partner statements (MKT-4): one per partner, month and currency, every line traced
to the invoice line (and credit note) it came from; closing is idempotent and reproducible;
a negative balance is carried; only the partner's money people see them, never another org."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from billing.models import CreditNote, Invoice, InvoiceLine
from billing.pricing.money import round_money
from common.errors import Conflict, InvalidInput
from marketplace.apps_services import app_create, app_logo_set
from marketplace.models import (
    PartnerStatement,
    PartnerTier,
    RevenueShareAgreement,
    RevenueShareEntry,
)
from marketplace.services import partner_apply, partner_decide
from marketplace.statements import statement_lines, statements_close
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.billing.conftest import make_open_invoice  # noqa: F401 -- a fixture
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.marketplace.test_apps import APP, image_bytes
from tests.marketplace.test_partners import APPLICATION

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
NOVEMBER = date(2026, 11, 1)
AFTER_NOVEMBER = datetime(2026, 12, 1, 3, tzinfo=UTC)


@pytest.fixture(autouse=True)
def accruals(monkeypatch) -> list:
    """These tests write the entries themselves (as marketplace/revenue.py would): closing's
    own accrual is recorded, not run."""
    calls: list = []
    monkeypatch.setattr(
        "marketplace.statements.revenue_accrue", lambda *, until=None: calls.append(until) or 0
    )
    return calls


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def partner(org):
    # Migrations seed the tiers, but a transactional test's flush removes them: put one back.
    PartnerTier.objects.get_or_create(
        code="registered", defaults={"name": "Registered", "revenue_share_percent": 70}
    )
    applied = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    return partner_decide(actor=SYSTEM, partner=applied, status="approved")


@pytest.fixture
def app(partner):
    made = app_create(actor=SYSTEM, partner=partner, **APP)
    return app_logo_set(actor=SYSTEM, app=made, data=image_bytes())  # listable


@pytest.fixture
def agreement(app):
    return RevenueShareAgreement.objects.create(
        app=app, basis="app_price", percent=Decimal("70"), starts_on=date(2026, 1, 1)
    )


@pytest.fixture
def customer(db):
    return OrganizationFactory(slug="initech", name="Initech")


class Ledger:
    """Paid invoices of the customer and the partner's entries on them, made with the ORM
    (as marketplace/revenue.py would make them)."""

    def __init__(self, make_invoice, agreement, customer):
        self.make_invoice = make_invoice
        self.agreement = agreement
        self.customer = customer

    def earning(self, base: str, day: str, *, currency: str = "USD", description: str = ""):
        invoice = self.make_invoice(
            self.customer, base, currency=currency, status=Invoice.Status.PAID, paid_at=at(day)
        )
        line = InvoiceLine.objects.create(
            invoice=invoice,
            position=1,
            kind=InvoiceLine.Kind.ADDON,
            description=description or f"{self.agreement.app.name} (app)",
            amount=Decimal(base),
        )
        return self._entry("earning", line, Decimal(base), at(day), currency=currency)

    def reversal(self, earning: RevenueShareEntry, base: str, day: str, *, number: str):
        note = CreditNote.objects.create(
            invoice=earning.invoice, number=number, amount=Decimal(base), reason="Refund"
        )
        return self._entry(
            "reversal",
            earning.invoice_line,
            -Decimal(base),
            at(day),
            currency=earning.currency,
            credit_note=note,
            reverses=earning,
        )

    def _entry(self, kind, line, base, recognized_at, *, currency, **extra):
        percent = self.agreement.percent
        return RevenueShareEntry.objects.create(
            partner=self.agreement.app.partner,
            app=self.agreement.app,
            agreement=self.agreement,
            organization=self.customer,
            kind=kind,
            invoice=line.invoice,
            invoice_line=line,
            currency=currency,
            base_amount=base,
            percent=percent,
            amount=round_money(base * percent / 100, currency),
            recognized_at=recognized_at,
            **extra,
        )


@pytest.fixture
def ledger(make_open_invoice, agreement, customer):  # noqa: F811 -- the imported fixture
    return Ledger(make_open_invoice, agreement, customer)


def member(org, role):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=role)
    return user


# --- Closing ---------------------------------------------------------------------------------
def test_closing_a_month_makes_one_statement_per_currency_from_its_entries(ledger):
    first = ledger.earning("100.00", "2026-11-03")
    second = ledger.earning("49.99", "2026-11-30", description="Doc Sync, 30 Nov")
    refund = ledger.reversal(first, "20.00", "2026-11-20", number="CN-T-0001")
    euros = ledger.earning("10.00", "2026-11-10", currency="EUR")
    later = ledger.earning("5.00", "2026-12-02")

    statements = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    # Numbered in a stable order: by partner, then currency.
    assert [(s.number, s.currency) for s in statements] == [
        ("PS-2026-11-0001", "EUR"),
        ("PS-2026-11-0002", "USD"),
    ]
    usd = next(s for s in statements if s.currency == "USD")
    assert usd.month == NOVEMBER
    assert usd.opening_balance == 0
    assert usd.earnings == Decimal("70.00") + Decimal("34.99")  # 34.993 rounds to 34.99
    assert usd.reversals == Decimal("-14.00")
    assert usd.closing_balance == usd.payable == Decimal("90.99")
    assert set(usd.entries.values_list("id", flat=True)) == {first.id, second.id, refund.id}
    assert next(s for s in statements if s.currency == "EUR").earnings == Decimal("7.00")
    euros.refresh_from_db()
    later.refresh_from_db()
    assert euros.statement.currency == "EUR"
    assert later.statement is None  # recognized in December: December's statement


def test_each_line_is_traceable_to_its_invoice_line_and_credit_note(ledger):
    first = ledger.earning("100.00", "2026-11-03")
    ledger.reversal(first, "20.00", "2026-11-20", number="CN-T-0001")
    [statement] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    earning, reversal = statement_lines(statement=statement)

    assert (earning.kind, reversal.kind) == ("earning", "reversal")
    assert earning.invoice_number == first.invoice.number == reversal.invoice_number
    assert earning.invoice_line_id == str(first.invoice_line_id) == reversal.invoice_line_id
    assert earning.invoice_line_description == "Doc Sync (app)"
    assert (earning.credit_note_number, reversal.credit_note_number) == ("", "CN-T-0001")
    assert (earning.base_amount, earning.percent, earning.amount) == (
        Decimal("100"),
        Decimal("70"),
        Decimal("70"),
    )
    assert sum(line.amount for line in (earning, reversal)) == statement.closing_balance
    for line in (earning, reversal):
        invoice_line = InvoiceLine.objects.get(pk=line.invoice_line_id)
        assert invoice_line.invoice.number == line.invoice_number
        assert invoice_line.invoice.status == Invoice.Status.PAID


def test_closing_twice_changes_nothing(ledger):
    ledger.earning("100.00", "2026-11-03")
    first_run = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)
    again = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    assert [s.pk for s in again] == [s.pk for s in first_run]
    assert PartnerStatement.objects.count() == 1
    assert AuditLogEntry.objects.filter(action="partner_statement.closed").count() == 1


def test_an_entry_that_arrives_after_the_close_lands_on_the_next_statement(ledger):
    ledger.earning("100.00", "2026-11-03")
    [november] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)
    late = ledger.earning("10.00", "2026-11-29")  # paid in November, accrued after the close

    assert statements_close(month=NOVEMBER, now=AFTER_NOVEMBER) == [november]
    [december] = statements_close(month=date(2026, 12, 1), now=datetime(2027, 1, 1, tzinfo=UTC))

    assert november.earnings == Decimal("70.00")
    assert list(december.entries.all()) == [late]
    assert december.number == "PS-2026-12-0001"


def test_a_negative_balance_is_carried_until_earnings_cover_it(ledger):
    october = ledger.earning("100.00", "2026-10-05")
    [first] = statements_close(month=date(2026, 10, 1), now=AFTER_NOVEMBER)
    ledger.reversal(october, "100.00", "2026-11-02", number="CN-T-0001")
    [second] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)
    [third] = statements_close(month=date(2026, 12, 1), now=datetime(2027, 1, 1, tzinfo=UTC))
    ledger.earning("50.00", "2027-01-15")
    [fourth] = statements_close(month=date(2027, 1, 1), now=datetime(2027, 2, 1, tzinfo=UTC))
    [fifth] = statements_close(month=date(2027, 2, 1), now=datetime(2027, 3, 1, tzinfo=UTC))

    assert (first.closing_balance, first.payable) == (Decimal("70.00"), Decimal("70.00"))
    # The refund is reversed in November, though October's statement already counted it.
    assert (second.opening_balance, second.reversals) == (0, Decimal("-70.00"))
    assert (second.closing_balance, second.payable) == (Decimal("-70.00"), 0)
    # No entries in December, but the debt is carried (and shown) all the same.
    assert (third.opening_balance, third.closing_balance, third.payable) == (
        Decimal("-70.00"),
        Decimal("-70.00"),
        0,
    )
    assert third.entries.count() == 0
    assert (fourth.opening_balance, fourth.earnings) == (Decimal("-70.00"), Decimal("35.00"))
    assert (fourth.closing_balance, fourth.payable) == (Decimal("-35.00"), 0)
    assert (fifth.opening_balance, fifth.payable) == (Decimal("-35.00"), 0)


def test_a_positive_balance_is_not_carried(ledger):
    ledger.earning("100.00", "2026-10-05")
    statements_close(month=date(2026, 10, 1), now=AFTER_NOVEMBER)

    assert statements_close(month=NOVEMBER, now=AFTER_NOVEMBER) == []


def test_closing_an_earlier_month_after_a_later_one_makes_nothing_twice(ledger):
    ledger.earning("100.00", "2026-10-05")
    [november] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    assert statements_close(month=date(2026, 10, 1), now=AFTER_NOVEMBER) == []
    assert november.earnings == Decimal("70.00")


def test_a_month_that_has_not_ended_is_refused(ledger):
    ledger.earning("100.00", "2026-11-03")

    with pytest.raises(Conflict) as refused:
        statements_close(month=NOVEMBER, now=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))

    assert refused.value.code == "month_not_ended"
    assert not PartnerStatement.objects.exists()


@pytest.mark.parametrize("month", [date(2026, 11, 2), datetime(2026, 11, 1, tzinfo=UTC), "2026-11"])
def test_a_month_must_be_given_as_its_first_day(month):
    with pytest.raises(InvalidInput) as refused:
        statements_close(month=month, now=AFTER_NOVEMBER)
    assert refused.value.code == "invalid_month"


def test_closing_accrues_the_revenue_share_up_to_the_months_end(accruals, db):
    statements_close(month=date(2026, 12, 1), now=datetime(2027, 1, 2, tzinfo=UTC))

    assert accruals == [datetime(2027, 1, 1, tzinfo=UTC)]


def test_numbers_have_no_gaps_across_partners(ledger, other_org, customer):
    ledger.earning("100.00", "2026-11-03")
    other = partner_decide(
        actor=SYSTEM,
        partner=partner_apply(
            actor=SYSTEM, organization=other_org, **{**APPLICATION, "display_name": "Globex Apps"}
        ),
        status="approved",
    )
    other_app = app_create(actor=SYSTEM, partner=other, **{**APP, "name": "Globex Sync"})
    other_agreement = RevenueShareAgreement.objects.create(
        app=other_app, basis="app_price", percent=Decimal("80"), starts_on=date(2026, 1, 1)
    )
    Ledger(ledger.make_invoice, other_agreement, customer).earning("10.00", "2026-11-04")

    statements = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    assert [s.number for s in statements] == ["PS-2026-11-0001", "PS-2026-11-0002"]
    assert {s.partner.display_name for s in statements} == {"Acme Integrations", "Globex Apps"}
    by_partner = {s.partner_id: s for s in statements}
    assert by_partner[other.pk].earnings == Decimal("8.00")
    assert list(by_partner[other.pk].entries.values_list("app__name", flat=True)) == ["Globex Sync"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_closes_make_each_statement_once(
    make_open_invoice,  # noqa: F811
    agreement,
    customer,
):
    ledger = Ledger(make_open_invoice, agreement, customer)
    ledger.earning("100.00", "2026-11-03")
    results, errors = [], []
    start = threading.Barrier(2)

    def close():
        try:
            start.wait()
            results.append(statements_close(month=NOVEMBER, now=AFTER_NOVEMBER))
        except Exception as error:  # pragma: no cover -- reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=close) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert PartnerStatement.objects.count() == 1
    assert [[s.number for s in run] for run in results] == [["PS-2026-11-0001"]] * 2
    assert RevenueShareEntry.objects.get().statement.number == "PS-2026-11-0001"


# --- Pages -----------------------------------------------------------------------------------
@pytest.fixture
def closed(ledger):
    first = ledger.earning("100.00", "2026-11-03")
    ledger.earning("49.99", "2026-11-30", description="=HYPERLINK(evil)")
    ledger.reversal(first, "20.00", "2026-11-20", number="CN-T-0001")
    [statement] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)
    return statement


def urls(org, statement):
    kwargs = {"slug": org.slug, "statement_id": statement.id}
    return {
        "list": reverse("marketplace:statement_list", kwargs={"slug": org.slug}),
        "detail": reverse("marketplace:statement_detail", kwargs=kwargs),
        "csv": reverse("marketplace:statement_csv", kwargs=kwargs),
    }


def csv_bytes(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.BILLING])
def test_the_partners_money_people_see_its_statements(client, org, closed, role):
    client.force_login(member(org, role))
    pages = urls(org, closed)

    listing = client.get(pages["list"])
    detail = client.get(pages["detail"])
    export = client.get(pages["csv"])

    assert listing.status_code == detail.status_code == export.status_code == 200
    assert closed.number in listing.content.decode()
    html = detail.content.decode()
    assert "Partner statement PS-2026-11-0001" in html
    assert "CN-T-0001" in html and closed.entries.first().invoice.number in html
    assert "$90.99" in html  # payable
    assert export["Content-Type"].startswith("text/csv")
    assert 'filename="PS-2026-11-0001.csv"' in export["Content-Disposition"]


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_developers_and_viewers_cannot_see_statements(client, org, closed, role):
    client.force_login(member(org, role))
    for url in urls(org, closed).values():
        assert client.get(url).status_code == 403


def test_another_org_never_sees_a_statement(client, org, other_org, closed):
    partner_decide(
        actor=SYSTEM,
        partner=partner_apply(actor=SYSTEM, organization=other_org, **APPLICATION),
        status="approved",
    )
    client.force_login(member(other_org, Role.OWNER))

    own_slug = urls(other_org, closed)
    assert closed.number not in client.get(own_slug["list"]).content.decode()
    assert client.get(own_slug["detail"]).status_code == 404
    assert client.get(own_slug["csv"]).status_code == 404
    for url in urls(org, closed).values():  # the partner's own URLs: not a member
        assert client.get(url).status_code == 404


def test_an_org_that_is_not_a_partner_has_no_statements(client, other_org):
    client.force_login(member(other_org, Role.OWNER))
    url = reverse("marketplace:statement_list", kwargs={"slug": other_org.slug})
    assert client.get(url).status_code == 404


def test_the_statement_renders_the_same_bytes_every_time(client, org, closed):
    client.force_login(member(org, Role.BILLING))
    pages = urls(org, closed)
    assert client.get(pages["detail"]).content == client.get(pages["detail"]).content
    assert csv_bytes(client.get(pages["csv"])) == csv_bytes(client.get(pages["csv"]))


def test_closing_again_gives_the_same_csv_bytes(client, org, ledger):
    ledger.earning("100.00", "2026-11-03")
    client.force_login(member(org, Role.OWNER))
    [statement] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)
    before = csv_bytes(client.get(urls(org, statement)["csv"]))

    [again] = statements_close(month=NOVEMBER, now=AFTER_NOVEMBER)

    assert csv_bytes(client.get(urls(org, again)["csv"])) == before


def test_the_csv_has_every_line_in_order_with_its_trace(client, org, closed):
    client.force_login(member(org, Role.OWNER))
    lines = csv_bytes(client.get(urls(org, closed)["csv"])).decode().splitlines()
    entries = list(closed.entries.order_by("recognized_at", "id"))

    assert lines[0] == (
        "statement,line,recognized_at,kind,app,invoice,invoice_line_id,invoice_line,"
        "credit_note,currency,base_amount,percent,amount"
    )
    assert len(lines) == 1 + len(entries) == 4
    assert [line.split(",")[1] for line in lines[1:]] == [str(entry.id) for entry in entries]
    assert lines[1].split(",")[3:] == [
        "earning",
        "Doc Sync",
        entries[0].invoice.number,
        str(entries[0].invoice_line_id),
        "Doc Sync (app)",
        "",
        "USD",
        "100.00",
        "70.00",
        "70.00",
    ]
    assert lines[2].split(",")[8:] == ["CN-T-0001", "USD", "-20.00", "70.00", "-14.00"]
    # A description that would run as a spreadsheet formula is neutralized.
    assert "'=HYPERLINK(evil)" in lines[3]
