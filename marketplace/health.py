"""Reads for the operator's marketplace health page: what waits for the operator (listings
in review, reported reviews, partner applications), the top apps, and the money paid out.

Operator-wide by design (the page is staff-only); each list is one query whatever its
length, and long lists are cut at `LIMIT` with the full count shown.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import (
    Avg,
    Count,
    DecimalField,
    IntegerField,
    Min,
    Q,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from billing.pricing.money import round_money
from marketplace.dashboard import PaidMonth
from marketplace.gallery_selectors import active_installs_subquery
from marketplace.models import App, AppReview, Partner, Payout, ReviewReport

LIMIT = 50  # rows per list: the page is a to-do list, the admin has the rest
TOP_APPS = 10
VISIBLE_REVIEWS = Q(reviews__hidden=False)


@dataclass(frozen=True)
class PendingListing:
    app: App
    waiting: timedelta  # since it was submitted

    @property
    def waiting_hours(self) -> int:
        return int(self.waiting.total_seconds() // 3600)


@dataclass
class MarketplaceHealth:
    now: datetime
    pending_listings: list[PendingListing]
    pending_listing_count: int
    top_apps: list[App]  # annotated: active_installs, review_count, rating
    paid: list[PaidMonth]  # newest month first
    paid_totals: list[tuple[str, Decimal]]
    open_payouts: list[Payout]  # pending and failed, oldest first
    reported_reviews: list[AppReview]  # annotated: open_reports, first_reported_at
    reported_review_count: int
    partners_awaiting: list[Partner]
    partners_awaiting_count: int


def pending_listings(*, now: datetime) -> tuple[list[PendingListing], int]:
    """Apps in review, the longest waiting first (the operator's queue is first come,
    first served)."""
    apps = (
        App.objects.filter(state=App.State.IN_REVIEW)
        .select_related("partner")
        .defer("logo", "description")
        .order_by("submitted_at", "created_at", "id")
    )
    rows = list(apps[: LIMIT + 1])
    count = len(rows) if len(rows) <= LIMIT else apps.count()
    return [
        PendingListing(app=app, waiting=now - (app.submitted_at or app.created_at))
        for app in rows[:LIMIT]
    ], count


def top_apps(*, limit: int = TOP_APPS) -> list[App]:
    """The apps with the most active installs (any state: a suspended app still installed
    is worth seeing), with the average rating of their visible reviews."""
    active_installs = active_installs_subquery()
    return list(
        App.objects.select_related("partner")
        .defer("logo", "description")
        .annotate(
            active_installs=Coalesce(Subquery(active_installs, output_field=IntegerField()), 0),
            review_count=Count("reviews", filter=VISIBLE_REVIEWS),
            rating=Avg(
                "reviews__rating",
                filter=VISIBLE_REVIEWS,
                output_field=DecimalField(max_digits=5, decimal_places=2),
            ),
        )
        .filter(active_installs__gt=0)
        .order_by("-active_installs", "name", "id")[:limit]
    )


def payouts_paid_by_month() -> tuple[list[PaidMonth], list[tuple[str, Decimal]]]:
    rows = (
        Payout.objects.filter(status=Payout.Status.PAID, paid_at__isnull=False)
        .annotate(month=TruncMonth("paid_at", tzinfo=UTC))
        .values("month", "currency")
        .annotate(amount=Sum("amount"), count=Count("id"))
        .order_by("-month", "currency")
    )
    paid = [
        PaidMonth(
            month=row["month"].astimezone(UTC).date(),
            currency=row["currency"],
            amount=round_money(row["amount"], row["currency"]),
            count=row["count"],
        )
        for row in rows
    ]
    totals: dict = defaultdict(Decimal)
    for row in paid:
        totals[row.currency] += row.amount
    return paid, sorted(totals.items())


def open_payouts() -> list[Payout]:
    """Pending and failed payouts, oldest first: a failed one needs the operator."""
    return list(
        Payout.objects.filter(status__in=[Payout.Status.PENDING, Payout.Status.FAILED])
        .select_related("partner", "statement")
        .order_by("created_at", "id")[:LIMIT]
    )


def reported_reviews() -> tuple[list[AppReview], int]:
    """Reviews with reports the operator has not resolved, the oldest report first."""
    open_report = Q(reports__resolved_at__isnull=True, reports__isnull=False)
    reported = ReviewReport.objects.filter(resolved_at__isnull=True).values("review_id")
    reviews = (
        AppReview.objects.filter(pk__in=reported)
        .annotate(
            open_reports=Count("reports", filter=open_report),
            first_reported_at=Min("reports__created_at", filter=open_report),
        )
        .filter(open_reports__gt=0)
        .select_related("app")
        .order_by("first_reported_at", "id")
    )
    rows = list(reviews[: LIMIT + 1])
    count = len(rows) if len(rows) <= LIMIT else reviews.count()
    return rows[:LIMIT], count


def partners_awaiting() -> tuple[list[Partner], int]:
    """Applications without a decision, the oldest first."""
    partners = (
        Partner.objects.filter(status=Partner.Status.APPLIED)
        .select_related("organization")
        .order_by("applied_at", "id")
    )
    rows = list(partners[: LIMIT + 1])
    count = len(rows) if len(rows) <= LIMIT else partners.count()
    return rows[:LIMIT], count


def marketplace_health(*, now: datetime | None = None) -> MarketplaceHealth:
    now = now or timezone.now()
    listings, listing_count = pending_listings(now=now)
    paid, paid_totals = payouts_paid_by_month()
    reviews, review_count = reported_reviews()
    partners, partner_count = partners_awaiting()
    return MarketplaceHealth(
        now=now,
        pending_listings=listings,
        pending_listing_count=listing_count,
        top_apps=top_apps(),
        paid=paid,
        paid_totals=paid_totals,
        open_payouts=open_payouts(),
        reported_reviews=reviews,
        reported_review_count=review_count,
        partners_awaiting=partners,
        partners_awaiting_count=partner_count,
    )
