"""The operator's marketplace health page: staff only; listings in review oldest first with
how long they wait, top apps by active installs with their rating, payouts paid by month
and currency, open payouts, reported reviews and applications awaiting a decision."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace.health import marketplace_health
from marketplace.models import App, AppReview, Partner, ReviewReport
from marketplace.services import partner_apply
from tests.factories import OrganizationFactory, UserFactory
from tests.marketplace.test_dashboard import (
    SYSTEM,
    approved_partner,
    at,
    install,
    make_app,
    payout,
)
from tests.marketplace.test_partners import APPLICATION

pytestmark = pytest.mark.django_db
URL = "/staff/marketplace/"


def review(app, rating: int, *, hidden: bool = False, reports: int = 0, resolved: int = 0):
    made = AppReview.objects.create(
        app=app, organization=OrganizationFactory(), rating=rating, title="Fine", hidden=hidden
    )
    for index in range(reports + resolved):
        ReviewReport.objects.create(
            review=made,
            organization=OrganizationFactory(),
            reason="Spam",
            created_at=timezone.now() - timedelta(days=index + 1),
            resolved_at=timezone.now() if index >= reports else None,
        )
    return made


def applicant(name: str, days_ago: int) -> Partner:
    applied = partner_apply(
        actor=SYSTEM, organization=OrganizationFactory(), **{**APPLICATION, "display_name": name}
    )
    Partner.objects.filter(pk=applied.pk).update(
        applied_at=timezone.now() - timedelta(days=days_ago)
    )
    return applied


@pytest.fixture
def market(org, other_org):
    now = timezone.now()
    acme, globex = approved_partner(org), approved_partner(other_org, "Globex Apps")
    waiting_3 = make_app(
        acme, "Waits Three", App.State.IN_REVIEW, submitted_at=now - timedelta(days=3)
    )
    waiting_10 = make_app(
        globex, "Waits Ten", App.State.IN_REVIEW, submitted_at=now - timedelta(days=10)
    )
    make_app(acme, "Still Draft", App.State.DRAFT)
    popular, niche, gone = (
        make_app(acme, "Popular"),
        make_app(globex, "Niche"),
        make_app(acme, "Gone"),
    )
    for _ in range(3):
        install(popular, OrganizationFactory(), installed_at=now - timedelta(days=9))
    install(
        popular, OrganizationFactory(), installed_at=now - timedelta(days=9), uninstalled_at=now
    )
    install(niche, OrganizationFactory(), installed_at=now - timedelta(days=1))
    install(gone, OrganizationFactory(), installed_at=now - timedelta(days=9), uninstalled_at=now)
    review(popular, 5)
    review(popular, 3)
    review(popular, 1, hidden=True)  # hidden: not in the average
    reported = review(niche, 2, reports=2, resolved=1)
    settled = review(popular, 4, resolved=1)
    payout(acme, "7.50", "paid", month=date(2026, 9, 1), paid_at=at(2026, 10, 2))
    payout(globex, "2.50", "paid", month=date(2026, 9, 1), paid_at=at(2026, 10, 9))
    payout(globex, "5.00", "paid", month=date(2026, 9, 1), paid_at=at(2026, 10, 9), currency="EUR")
    payout(acme, "4.00", "paid", month=date(2026, 10, 1), paid_at=at(2026, 11, 2))
    pending = payout(acme, "3.00", "pending", month=date(2026, 11, 1))
    failed = payout(globex, "1.00", "failed", month=date(2026, 10, 1))
    return {
        "waiting_3": waiting_3,
        "waiting_10": waiting_10,
        "popular": popular,
        "niche": niche,
        "reported": reported,
        "settled": settled,
        "pending": pending,
        "failed": failed,
        "old_applicant": applicant("Old Applicant", 5),
        "new_applicant": applicant("New Applicant", 1),
    }


@pytest.fixture
def staff(client):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    return user


def test_listings_in_review_wait_oldest_first_with_how_long(market):
    health = marketplace_health()
    assert [item.app for item in health.pending_listings] == [
        market["waiting_10"],
        market["waiting_3"],
    ]
    assert health.pending_listing_count == 2
    assert [item.waiting.days for item in health.pending_listings] == [10, 3]
    assert health.pending_listings[1].waiting_hours == 72


def test_top_apps_rank_by_active_installs_with_the_visible_reviews_rating(market):
    top = marketplace_health().top_apps
    assert [(app.name, app.active_installs) for app in top] == [("Popular", 3), ("Niche", 1)]
    popular, niche = top
    # 5 and 3 and the settled 4; the hidden 1 is left out.
    assert popular.rating == Decimal(4) and popular.review_count == 3
    assert niche.rating == Decimal(2)


def test_payouts_paid_are_summed_by_month_and_currency(market):
    health = marketplace_health()
    assert [(row.month, row.currency, row.amount, row.count) for row in health.paid] == [
        (date(2026, 11, 1), "USD", Decimal("4.00"), 1),
        (date(2026, 10, 1), "EUR", Decimal("5.00"), 1),
        (date(2026, 10, 1), "USD", Decimal("10.00"), 2),
    ]
    assert health.paid_totals == [("EUR", Decimal("5.00")), ("USD", Decimal("14.00"))]
    assert health.open_payouts == [market["pending"], market["failed"]]


def test_only_reviews_with_open_reports_wait_for_the_operator(market):
    health = marketplace_health()
    assert health.reported_reviews == [market["reported"]]
    assert health.reported_reviews[0].open_reports == 2
    assert health.reported_review_count == 1


def test_applications_without_a_decision_wait_oldest_first(market):
    health = marketplace_health()
    assert health.partners_awaiting == [market["old_applicant"], market["new_applicant"]]
    assert health.partners_awaiting_count == 2


def test_an_empty_marketplace_has_nothing_waiting(db):
    health = marketplace_health()
    assert health.pending_listings == [] and health.top_apps == [] and health.paid == []
    assert health.reported_reviews == [] and health.partners_awaiting == []


def test_staff_see_the_page_with_links_to_the_admin(client, staff, market):
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("marketplace_health:index") == URL
    assert reverse("admin:marketplace_app_change", args=[market["waiting_10"].pk]) in html
    assert reverse("admin:marketplace_appreview_change", args=[market["reported"].pk]) in html
    assert reverse("admin:marketplace_partner_change", args=[market["old_applicant"].pk]) in html
    assert html.index("Waits Ten") < html.index("Waits Three")
    assert 'data-figure="pending-listings">2<' in html
    assert 'data-status="failed"' in html and 'data-status="pending"' in html
    assert "Still Draft" not in html


def test_a_user_who_is_not_staff_is_refused(client, org, market):
    client.force_login(UserFactory())
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert client.get(URL, follow=True).content.decode().count("Waits Ten") == 0


def test_anonymous_visitors_are_refused(client, market):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_page_costs_the_same_queries_however_much_waits(
    client, staff, market, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as before:
        assert client.get(URL).status_code == 200
    now = timezone.now()
    partner = market["popular"].partner
    for index in range(5):
        app = make_app(partner, f"More {index}", App.State.IN_REVIEW, submitted_at=now)
        install(app, OrganizationFactory(), installed_at=now)
        review(app, 4, reports=1)
        applicant(f"Applicant {index}", 0)
        payout(partner, "1.00", "pending", month=date(2025, index + 1, 1))
    with django_assert_max_num_queries(len(before)):
        assert client.get(URL).status_code == 200
