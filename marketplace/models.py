"""Partners and their tiers (MKT-1, MKT-5): who may list apps, and the share they earn.

An organization applies to become a partner; the operator approves it in admin and puts it
in a tier, whose revenue share is the default of the partner's app agreements.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from portal.models import Organization


class PartnerTier(models.Model):
    """Registered, certified, premier... with the partner's default share of revenue."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    # What the partner keeps of the revenue its apps bring, in percent (the operator keeps
    # the rest). Agreements per app may differ; this is their default.
    revenue_share_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    rank = models.PositiveIntegerField(default=0, help_text="Higher is a higher tier.")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["rank", "code"]

    def __str__(self) -> str:
        return self.name


class Partner(models.Model):
    class Status(models.TextChoices):
        APPLIED = "applied"
        APPROVED = "approved"
        REJECTED = "rejected"
        SUSPENDED = "suspended"

    class PayoutMethod(models.TextChoices):
        STRIPE_CONNECT = "stripe_connect"
        BANK_TRANSFER = "bank_transfer"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="partner"
    )
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.APPLIED)
    tier = models.ForeignKey(
        PartnerTier, null=True, blank=True, on_delete=models.PROTECT, related_name="partners"
    )
    display_name = models.CharField(max_length=200)
    website = models.URLField(max_length=500)
    description = models.TextField(blank=True)
    support_email = models.EmailField()
    support_url = models.URLField(max_length=500, blank=True)
    payout_method = models.CharField(max_length=14, choices=PayoutMethod.choices)
    # A Stripe Connect account id (acct_…) or the bank transfer's reference; never a full
    # account number: payouts by bank are arranged outside Tollgate.
    payout_reference = models.CharField(max_length=100)
    payout_email = models.EmailField()
    # Co-marketing (MKT-5): what the operator offers this partner.
    featured = models.BooleanField(default=False, help_text="Shown first in the gallery.")
    case_study = models.BooleanField(default=False)
    joint_announcements = models.BooleanField(default=False)
    review_note = models.TextField(blank=True, help_text="The operator's words to the partner.")
    applied_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-applied_at"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def revenue_share_percent(self) -> Decimal | None:
        return self.tier.revenue_share_percent if self.tier else None


CATEGORIES = {
    "analytics": "Analytics",
    "automation": "Automation",
    "communication": "Communication",
    "crm": "CRM",
    "developer-tools": "Developer tools",
    "documents": "Documents",
    "finance": "Finance",
    "security": "Security",
}


class App(models.Model):
    """A partner's app and its listing (MKT-1, MKT-2): shown in the gallery only once the
    operator has reviewed it; every state change is audited and e-mailed to the partner."""

    class State(models.TextChoices):
        DRAFT = "draft"
        IN_REVIEW = "in_review"
        LISTED = "listed"
        CHANGES_REQUESTED = "changes_requested"
        SUSPENDED = "suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="apps")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    summary = models.CharField(max_length=200)
    description = models.TextField(help_text="Markdown.")
    categories = models.JSONField(default=list)
    scopes = models.JSONField(default=list)  # endpoint groups the app asks to call
    redirect_uris = models.JSONField(default=list)
    support_url = models.URLField(max_length=500)
    privacy_url = models.URLField(max_length=500)
    pricing_note = models.CharField(max_length=300, blank=True)
    # The logo itself, checked image bytes (PNG, JPEG or WebP): small, and served by our
    # own view, so no media storage is needed.
    logo = models.BinaryField(null=True, blank=True, editable=False)
    logo_content_type = models.CharField(max_length=20, blank=True, editable=False)
    state = models.CharField(max_length=17, choices=State.choices, default=State.DRAFT)
    certified = models.BooleanField(default=False)
    review_note = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    listed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["state", "name"], name="app_state_name")]

    def __str__(self) -> str:
        return self.name


class AppScreenshot(models.Model):
    """A screenshot of a listing: checked image bytes, like the logo, in the partner's order."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="screenshots")
    image = models.BinaryField(editable=False)
    content_type = models.CharField(max_length=20, editable=False)
    caption = models.CharField(max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["app", "position", "created_at"]

    def __str__(self) -> str:
        return self.caption or f"Screenshot {self.position}"


class AppReview(models.Model):
    """A customer's review of a listed app: one per organization, editable, reportable;
    the operator hides a review that breaks the rules (it stays stored)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="reviews")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rating = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    title = models.CharField(max_length=120, blank=True)
    body = models.TextField(blank=True, max_length=5000)
    hidden = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["app", "organization"], name="one_review_per_org"),
            models.CheckConstraint(
                condition=models.Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.app} {self.rating}/5"


class ReviewReport(models.Model):
    """A report that a review breaks the rules: one per review and reporting organization."""

    id = models.BigAutoField(primary_key=True)
    review = models.ForeignKey(AppReview, on_delete=models.CASCADE, related_name="reports")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["review", "organization"], name="one_report_per_org")
        ]

    def __str__(self) -> str:
        return f"Report on {self.review_id}"
