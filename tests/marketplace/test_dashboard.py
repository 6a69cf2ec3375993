"""The partner dashboard: installs over time, aggregated usage of the apps' keys, earnings
and payouts are right for known data, never include another partner's, are refused to
roles and partners that may not see them, and cost the same queries for many apps."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.ingest import usage_ingest
from billing.models import Invoice, InvoiceLine, Plan
from marketplace.dashboard import (
    INSTALL_WEEKS,
    USAGE_DAYS,
    install_window_start,
    partner_dashboard,
    usage_window_start,
)
from marketplace.models import (
    App,
    Install,
    Partner,
    PartnerStatement,
    Payout,
    RevenueShareAgreement,
    RevenueShareEntry,
)
from marketplace.services import partner_apply, partner_decide
from portal.audit import Actor
from portal.roles import Role
from tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory, ProjectFactory
from tests.marketplace.test_partners import APPLICATION

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


# --- Building known data (rows made directly: the install and accrual flows are others') ---
def approved_partner(organization, name: str = "Acme Integrations") -> Partner:
    applied = partner_apply(
        actor=SYSTEM, organization=organization, **{**APPLICATION, "display_name": name}
    )
    return partner_decide(actor=SYSTEM, partner=applied, status="approved")


def make_app(partner: Partner, name: str, state: str = App.State.LISTED, **fields) -> App:
    return App.objects.create(
        partner=partner,
        name=name,
        slug=f"{name.lower().replace(' ', '-')}-{App.objects.count()}",
        summary=f"{name} does things.",
        description="Does **things**.",
        support_url="https://apps.example.com/support",
        privacy_url="https://apps.example.com/privacy",
        state=state,
        **fields,
    )


def install(app: App, organization, *, installed_at, uninstalled_at=None) -> Install:
    return Install.objects.create(
        app=app,
        organization=organization,
        project=ProjectFactory(organization=organization),
        scopes=["read"],
        installed_at=installed_at,
        uninstalled_at=uninstalled_at,
    )


def app_key(app: App | None, organization):
    """The twin key of an app's token (app=None: an ordinary key of the org)."""
    return ApiKeyFactory(
        project=ProjectFactory(organization=organization),
        environment="live",
        app_id=app.id if app else None,
    )


def use(key, meter: str, at: datetime, *, quantity="1", times: int = 1, **properties) -> None:
    events = [
        {
            "id": f"{key.id}-{meter}-{at.isoformat()}-{index}",
            "meter": meter,
            "key_id": str(key.id),
            "quantity": quantity,
            "timestamp": at.isoformat(),
            "properties": properties,
        }
        for index in range(times)
    ]
    result = usage_ingest(events=events)
    assert result.accepted == times, result.rejected


def invoice_line(organization, *, currency: str = "USD") -> InvoiceLine:
    """A paid invoice's line, on a Pro subscription of the org (ORM rows only)."""
    from billing.demo_catalog import ensure_demo_catalog
    from billing.subscriptions import subscription_current, subscription_subscribe

    ensure_demo_catalog(actor=SYSTEM)
    subscription = subscription_current(organization=organization) or subscription_subscribe(
        actor=SYSTEM, organization=organization, plan=Plan.objects.get(code="pro")
    )
    now = timezone.now()
    number = Invoice.objects.count() + 1
    invoice = Invoice.objects.create(
        organization=organization,
        subscription=subscription,
        number=f"INV-DASH-{number:05d}",
        status=Invoice.Status.PAID,
        currency=currency,
        period_start=now - timedelta(days=31),
        period_end=now,
        plan="pro",
        plan_version=1,
        usage_measured_at=now,
        subtotal=Decimal("100.00"),
        total=Decimal("100.00"),
        finalize_after=now,
        issued_at=now,
        due_at=now,
    )
    return InvoiceLine.objects.create(
        invoice=invoice,
        position=1,
        kind=InvoiceLine.Kind.USAGE,
        description="API requests",
        meter="requests",
        amount=Decimal("100.00"),
    )


def entry(
    app: App,
    organization,
    amount: str,
    recognized_at: datetime,
    *,
    currency: str = "USD",
    reverses: RevenueShareEntry | None = None,
) -> RevenueShareEntry:
    agreement = RevenueShareAgreement.objects.filter(app=app).first() or (
        RevenueShareAgreement.objects.create(
            app=app, basis="app_usage", percent=Decimal("20"), starts_on=date(2020, 1, 1)
        )
    )
    line = reverses.invoice_line if reverses else invoice_line(organization, currency=currency)
    return RevenueShareEntry.objects.create(
        partner=app.partner,
        app=app,
        agreement=agreement,
        organization=organization,
        kind="reversal" if reverses else "earning",
        invoice=line.invoice,
        invoice_line=line,
        reverses=reverses,
        currency=currency,
        base_amount=Decimal(amount) * 5,
        percent=Decimal("20"),
        amount=Decimal(amount),
        recognized_at=recognized_at,
    )


def payout(
    partner: Partner, amount: str, status: str, *, month: date, paid_at=None, currency="USD"
):
    statement = PartnerStatement.objects.create(
        partner=partner,
        number=f"ST-{partner.pk.hex[:6]}-{month:%Y%m}-{currency}",
        month=month,
        currency=currency,
        payable=Decimal(amount),
    )
    return Payout.objects.create(
        partner=partner,
        statement=statement,
        amount=Decimal(amount),
        currency=currency,
        method=partner.payout_method,
        destination=partner.payout_reference,
        status=status,
        paid_at=paid_at,
    )


def at(year, month, day, hour=12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def partner(org):
    return approved_partner(org)


@pytest.fixture
def other_partner(other_org):
    return approved_partner(other_org, "Globex Apps")


@pytest.fixture
def world(partner, other_partner, meters, settings):
    """Acme's partner has Doc Sync and Mail Merge; Globex's partner has Spy, whose figures
    must never show on Acme's dashboard. Customers: Initech and Umbrella."""
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650  # usage from before the window, on purpose
    now = timezone.now()
    days = lambda n: now - timedelta(days=n)  # noqa: E731
    initech, umbrella = OrganizationFactory(name="Initech"), OrganizationFactory(name="Umbrella")
    doc_sync, mail_merge = make_app(partner, "Doc Sync"), make_app(partner, "Mail Merge")
    spy = make_app(other_partner, "Spy")

    # Doc Sync: one install from long ago still active; Umbrella installed long ago,
    # uninstalled 10 days ago and reinstalled 5 days ago; Initech's second project tried
    # it for a while inside the window (installed 20 days ago, uninstalled 3 days ago).
    install(doc_sync, initech, installed_at=days(200))
    install(doc_sync, umbrella, installed_at=days(200), uninstalled_at=days(10))
    install(doc_sync, umbrella, installed_at=days(5))
    install(doc_sync, OrganizationFactory(), installed_at=days(20), uninstalled_at=days(3))
    install(mail_merge, initech, installed_at=days(1))
    for _ in range(3):
        install(spy, OrganizationFactory(), installed_at=days(2))

    # Usage: the apps' twin keys count; an ordinary key of the same org and another
    # partner's app do not; neither does usage from before the 30-day window.
    doc_initech, doc_umbrella = app_key(doc_sync, initech), app_key(doc_sync, umbrella)
    mail_initech = app_key(mail_merge, initech)
    use(doc_initech, "requests", days(0), times=3)
    use(doc_initech, "records_processed", days(0), quantity="40")
    use(doc_initech, "requests", days(40), times=4)  # before the window
    use(doc_umbrella, "requests", days(2), times=2)
    use(doc_umbrella, "records_processed", days(2), quantity="2")
    use(doc_umbrella, "storage_gb", days(2), quantity="7")
    use(doc_initech, "storage_gb", days(1), quantity="5")
    use(mail_initech, "requests", days(1))
    use(app_key(None, initech), "requests", days(0), times=5)
    use(app_key(spy, umbrella), "requests", days(0), times=7)

    # Earnings: a reversal nets against its earning's month of recognition.
    earning = entry(doc_sync, initech, "10.00", at(2026, 9, 15))
    entry(doc_sync, initech, "-2.50", at(2026, 10, 3), reverses=earning)
    entry(doc_sync, umbrella, "5.00", at(2026, 10, 20), currency="EUR")
    entry(mail_merge, initech, "1.00", at(2026, 10, 21))
    entry(spy, umbrella, "99.00", at(2026, 10, 5))

    payout(partner, "7.50", "paid", month=date(2026, 9, 1), paid_at=at(2026, 10, 2))
    payout(partner, "3.00", "pending", month=date(2026, 10, 1))
    payout(partner, "1.00", "failed", month=date(2026, 8, 1))
    payout(other_partner, "50.00", "paid", month=date(2026, 9, 1), paid_at=at(2026, 10, 2))
    return {"doc_sync": doc_sync, "mail_merge": mail_merge, "spy": spy, "now": now}


def member(client, organization, role=Role.OWNER):
    membership = MembershipFactory(organization=organization, role=role)
    client.force_login(membership.user)
    return membership.user


def dashboard_url(organization, app=None) -> str:
    if app is None:
        return reverse("marketplace:dashboard", kwargs={"slug": organization.slug})
    return reverse(
        "marketplace:dashboard_app", kwargs={"slug": organization.slug, "app_id": app.id}
    )


# --- Figures ---------------------------------------------------------------------------------
def test_installs_count_new_installs_uninstalls_and_reinstalls_in_the_window(partner, world):
    figures = partner_dashboard(partner=partner)
    assert figures.active_installs == 3  # Doc Sync: Initech, Umbrella again; Mail Merge
    assert figures.installs == 3  # the reinstall, the trial, Mail Merge; not the old ones
    assert figures.uninstalls == 2
    assert len(figures.weeks) == INSTALL_WEEKS
    assert sum(week.installs for week in figures.weeks) == 3
    assert figures.weeks[-1].active_at_end == 3
    # At the end of the first week both long-standing installs were still active.
    assert figures.weeks[0].active_at_end == 2
    assert figures.install_start == install_window_start(figures.now)
    assert figures.install_start.weekday() == 0
    assert figures.now - figures.install_start >= timedelta(days=84)


def test_installs_of_one_app_leave_out_the_partners_other_apps(partner, world):
    figures = partner_dashboard(partner=partner, app_id=world["doc_sync"].id)
    assert (figures.active_installs, figures.installs, figures.uninstalls) == (2, 2, 2)
    assert figures.app == world["doc_sync"]
    assert figures.app_rows == []


def test_usage_counts_only_the_apps_keys_inside_the_window(partner, world):
    figures = partner_dashboard(partner=partner)
    by_meter = {usage.meter.code: usage for usage in figures.meters}
    assert by_meter["requests"].events == 3 + 2 + 1  # not the plain key, Spy, or day -40
    assert by_meter["requests"].quantity == Decimal(6)
    assert by_meter["records_processed"].quantity == Decimal(42)
    assert by_meter["storage_gb"].quantity == Decimal(7)  # a max is the largest of maxima
    assert figures.meters[0].meter.code == "requests"
    # Initech (both apps) and Umbrella: distinct organizations, not a sum per app.
    assert figures.installing_orgs == 2
    requests_per_day = figures.usage_days["requests"]
    assert len(requests_per_day) == USAGE_DAYS
    assert sum(day.events for day in requests_per_day) == 6
    assert requests_per_day[-1].day == world["now"].date()
    assert figures.usage_start == usage_window_start(world["now"])


def test_usage_of_meters_that_do_not_add_up_across_orgs_shows_events_only(partner, world):
    key = app_key(world["doc_sync"], OrganizationFactory())
    use(key, "active_users", world["now"], user_id="u-1")
    figures = partner_dashboard(partner=partner)
    active_users = next(usage for usage in figures.meters if usage.meter.code == "active_users")
    assert (active_users.events, active_users.quantity) == (1, None)


def test_the_per_app_table_splits_installs_usage_and_earnings(partner, world):
    rows = {row.app.name: row for row in partner_dashboard(partner=partner).app_rows}
    assert list(rows) == ["Doc Sync", "Mail Merge"]
    doc, mail = rows["Doc Sync"], rows["Mail Merge"]
    assert (doc.active_installs, doc.installs, doc.uninstalls) == (2, 2, 2)
    assert (doc.installing_orgs, doc.calls) == (2, 5)
    assert doc.net == [("EUR", Decimal("5.00")), ("USD", Decimal("7.50"))]
    assert (mail.active_installs, mail.installing_orgs, mail.calls) == (1, 1, 1)
    assert mail.net == [("USD", Decimal("1.00"))]


def test_earnings_are_summed_by_recognized_month_and_currency_with_reversals_netted(partner, world):
    figures = partner_dashboard(partner=partner)
    months = {(row.month, row.currency): row for row in figures.earnings}
    assert list(months) == [
        (date(2026, 10, 1), "EUR"),
        (date(2026, 10, 1), "USD"),
        (date(2026, 9, 1), "USD"),
    ]
    october = months[(date(2026, 10, 1), "USD")]
    assert (october.earnings, october.reversals, october.net) == (
        Decimal("1.00"),
        Decimal("-2.50"),
        Decimal("-1.50"),
    )
    assert months[(date(2026, 9, 1), "USD")].net == Decimal("10.00")
    totals = {total.currency: total for total in figures.earnings_totals}
    assert totals["USD"].net == Decimal("8.50")  # never Spy's 99.00
    assert totals["EUR"].net == Decimal("5.00")


def test_payouts_paid_are_summed_by_month_and_pending_ones_apart(partner, world):
    figures = partner_dashboard(partner=partner)
    assert [(row.month, row.currency, row.amount, row.count) for row in figures.paid] == [
        (date(2026, 10, 1), "USD", Decimal("7.50"), 1)  # not Globex's 50.00, not the failed
    ]
    assert figures.paid_totals == [("USD", Decimal("7.50"))]
    assert figures.pending_totals == [("USD", Decimal("3.00"))]


def test_another_partners_app_is_not_found(partner, world):
    from common.errors import NotFound

    with pytest.raises(NotFound):
        partner_dashboard(partner=partner, app_id=world["spy"].id)


def test_a_partner_without_apps_sees_zeroes(other_org, meters):
    lonely = approved_partner(OrganizationFactory(), "Lonely")
    figures = partner_dashboard(partner=lonely)
    assert (figures.active_installs, figures.installs, figures.installing_orgs) == (0, 0, 0)
    assert figures.meters == [] and figures.earnings == [] and figures.paid == []
    assert all(week.active_at_end == 0 for week in figures.weeks)


# --- The page --------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.BILLING])
def test_owners_admins_and_billing_see_the_dashboard(client, org, world, role):
    member(client, org, role)
    response = client.get(dashboard_url(org))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-figure="active-installs">3<' in html
    assert 'data-figure="installing-orgs">2<' in html
    assert "Doc Sync" in html and "Mail Merge" in html
    assert "Spy" not in html and "Globex" not in html
    # Aggregated: no installing organization is named.
    assert "Initech" not in html and "Umbrella" not in html
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")


@pytest.mark.parametrize(
    ("role", "links"),
    [
        (Role.OWNER, {"Partner program"}),
        (Role.BILLING, {"Partner earnings"}),
        (Role.DEVELOPER, set()),
    ],
)
def test_the_navigation_leads_each_role_to_the_partner_pages_it_may_open(
    client, org, other_org, partner, role, links
):
    member(client, org, role)
    html = client.get(reverse("portal:dashboard", kwargs={"slug": org.slug})).content.decode()
    shown = {name for name in ("Partner program", "Partner earnings") if f">{name}</a>" in html}
    assert shown == links
    if role == Role.OWNER:  # the partner page links on to the money
        page = client.get(reverse("marketplace:partner", kwargs={"slug": org.slug}))
        assert dashboard_url(org) in page.content.decode()
    # A billing member of an org that is no partner sees no partner link.
    member(client, other_org, Role.BILLING)
    html = client.get(reverse("portal:dashboard", kwargs={"slug": other_org.slug})).content
    assert b"Partner earnings" not in html


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_developers_and_viewers_are_refused(client, org, world, role):
    member(client, org, role)
    assert client.get(dashboard_url(org)).status_code == 403
    assert client.get(dashboard_url(org, world["doc_sync"])).status_code == 403


def test_another_org_cannot_see_the_dashboard_or_its_apps(client, org, other_org, world):
    member(client, other_org)
    assert client.get(dashboard_url(org)).status_code == 404
    assert client.get(dashboard_url(org, world["doc_sync"])).status_code == 404
    # Its own dashboard shows its own app only, and refuses Acme's app.
    own = client.get(dashboard_url(other_org)).content.decode()
    assert "Spy" in own and "Doc Sync" not in own
    assert 'data-figure="active-installs">3<' in own
    assert client.get(dashboard_url(other_org, world["doc_sync"])).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, org, world):
    response = client.get(dashboard_url(org))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("status", ["applied", "rejected", "suspended"])
def test_only_an_approved_partner_has_a_dashboard(client, org, partner, status):
    Partner.objects.filter(pk=partner.pk).update(status=status)
    member(client, org)
    assert client.get(dashboard_url(org)).status_code == 404


def test_an_org_that_is_no_partner_has_no_dashboard(client, org):
    member(client, org)
    assert client.get(dashboard_url(org)).status_code == 404


def test_one_apps_page_shows_that_app(client, org, world):
    member(client, org)
    response = client.get(dashboard_url(org, world["doc_sync"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-figure="active-installs">2<' in html
    assert 'id="app-figures"' not in html


def test_bad_app_ids_and_meters_are_handled(client, org, world):
    member(client, org)
    base = dashboard_url(org)
    assert client.get(base + "/not-a-uuid").status_code == 404
    assert client.get(base + "/00000000-0000-0000-0000-000000000000").status_code == 404
    response = client.get(base + "?meter=" + "x" * 500)  # unknown: the calls chart instead
    assert response.status_code == 200
    assert "Events per day: requests" in response.content.decode()
    chosen = client.get(base + "?meter=records_processed").content.decode()
    assert "Events per day: records_processed" in chosen


def test_the_page_costs_the_same_queries_for_many_apps(
    client, org, partner, meters, settings, django_assert_max_num_queries
):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650
    now = timezone.now()

    def add_app(index: int) -> None:
        app = make_app(partner, f"App {index}")
        for customer in (OrganizationFactory(), OrganizationFactory()):
            install(app, customer, installed_at=now - timedelta(days=3))
            use(app_key(app, customer), "requests", now - timedelta(days=1), times=2)
            entry(app, customer, "4.00", now - timedelta(days=1))

    add_app(0)
    member(client, org)
    url = dashboard_url(org)
    with CaptureQueriesContext(connection) as one_app:
        assert client.get(url).status_code == 200
    assert len(one_app) <= 25
    for index in range(1, 6):
        add_app(index)
    with django_assert_max_num_queries(len(one_app)):
        response = client.get(url)
    assert response.status_code == 200
    assert 'data-figure="active-installs">12<' in response.content.decode()
