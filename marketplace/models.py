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

from billing.models import AddOn, CreditNote, Invoice, InvoiceLine, SubscriptionAddOn, money_field
from keys.models import ApiKey
from portal.models import Organization, Project


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
    # Co-marketing the tier comes with (MKT-5): given to a partner when it is approved into
    # the tier; the operator may add more per partner, never takes them away by approving.
    featured = models.BooleanField(
        default=False, help_text="Its partners' apps first in the gallery."
    )
    case_study = models.BooleanField(default=False)
    joint_announcements = models.BooleanField(default=False)

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
    # Where the gallery's Install button sends a customer: the app's own page that starts
    # the OAuth flow (it holds the PKCE verifier, so only the app can start it).
    install_url = models.URLField(max_length=500, blank=True)
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
    # The scopes the operator approved when it last listed the app: installs never grant
    # more, even while an edit that asks for more waits in review (ACC-6).
    approved_scopes = models.JSONField(default=list, blank=True)
    # The OAuth client (django-oauth-toolkit) the app signs in with; made with the app.
    oauth_application = models.OneToOneField(
        "oauth2_provider.Application",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="marketplace_app",
        editable=False,
    )
    # A paid app's price per billing period, on top of the plan; empty: free. Billed as a
    # hidden add-on (`addon`) on the installing org's own invoice.
    price = money_field(null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    addon = models.OneToOneField(
        AddOn,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="marketplace_app",
        editable=False,
    )

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


class Install(models.Model):
    """An app installed into one project of an organization through OAuth consent (ACC-6).

    At most one active install per app and organization; uninstalling ends it (the row
    stays, for install history, statements and the partner's dashboard)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="installs")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="app_installs"
    )
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="app_installs")
    # What the org granted: asked ∩ approved by the operator ∩ allowed by the org's plan.
    scopes = models.JSONField(default=list)
    installed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    installed_at = models.DateTimeField(default=timezone.now)
    uninstalled_at = models.DateTimeField(null=True, blank=True)
    uninstalled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A paid app's add-on on the org's subscription while installed.
    subscription_addon = models.ForeignKey(
        SubscriptionAddOn, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-installed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "organization"],
                condition=models.Q(uninstalled_at__isnull=True),
                name="one_active_install_per_org",
            )
        ]
        indexes = [models.Index(fields=["app", "installed_at"], name="install_app_time")]

    def __str__(self) -> str:
        return f"{self.app} in {self.organization}"

    @property
    def active(self) -> bool:
        return self.uninstalled_at is None


class InstallGrant(models.Model):
    """Which install an authorization code was granted for: a user may administer several
    organizations, so the code alone does not say which one consented."""

    grant = models.OneToOneField(
        "oauth2_provider.Grant", on_delete=models.CASCADE, related_name="marketplace_install"
    )
    install = models.ForeignKey(Install, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"Grant for {self.install_id}"


class AppToken(models.Model):
    """An access token issued to an installed app, and its twin API key: the gate checks
    the key (hash only, cached, revoked like any key), so app calls need no OAuth lookup
    in the hot path and are metered to the installing org, attributed to the app."""

    id = models.BigAutoField(primary_key=True)
    install = models.ForeignKey(Install, on_delete=models.CASCADE, related_name="tokens")
    access_token = models.OneToOneField(
        "oauth2_provider.AccessToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="marketplace_token",
    )
    refresh_token = models.ForeignKey(
        "oauth2_provider.RefreshToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    api_key = models.OneToOneField(ApiKey, on_delete=models.PROTECT, related_name="app_token")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"Token of {self.install_id}"


# --- Revenue share (MKT-4, docs/marketplace.md) ---------------------------------------------
class RevenueShareAgreement(models.Model):
    """The partner's share of one app's revenue, from `starts_on` until `ends_on` (exclusive):
    of the app's own price (`app_price`) or of the usage attributed to it (`app_usage`)."""

    class Basis(models.TextChoices):
        APP_PRICE = "app_price"
        APP_USAGE = "app_usage"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="agreements")
    basis = models.CharField(max_length=9, choices=Basis.choices)
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["app", "basis", "starts_on"]

    def __str__(self) -> str:
        return f"{self.app}: {self.percent}% of {self.basis} from {self.starts_on}"


class PartnerStatement(models.Model):
    """One partner's earnings of one month in one currency; its lines are the entries that
    point at it, each traceable to an invoice line (and credit note, for a reversal)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="statements")
    number = models.CharField(max_length=32, unique=True)
    month = models.DateField(help_text="The first day of the month.")
    currency = models.CharField(max_length=3)
    # A negative balance of the previous statement is carried into this one.
    opening_balance = money_field(default=Decimal(0))
    earnings = money_field(default=Decimal(0))
    reversals = money_field(default=Decimal(0))  # negative or zero
    closing_balance = money_field(default=Decimal(0))
    payable = money_field(default=Decimal(0))  # what the payout pays: the balance, if positive
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-month", "partner"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "month", "currency"], name="one_statement_per_month"
            )
        ]

    def __str__(self) -> str:
        return self.number


class RevenueShareEntry(models.Model):
    """One line of a partner's earnings, never changed once written (but for the statement
    it lands on): an earning from a paid invoice's line, or the reversal of a part of one by
    a credit note (refunded or credited)."""

    class Kind(models.TextChoices):
        EARNING = "earning"
        REVERSAL = "reversal"

    id = models.BigAutoField(primary_key=True)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="revenue_entries")
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="revenue_entries")
    agreement = models.ForeignKey(
        RevenueShareAgreement, on_delete=models.PROTECT, related_name="entries"
    )
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")
    invoice_line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="+")
    credit_note = models.ForeignKey(
        CreditNote, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals"
    )
    currency = models.CharField(max_length=3)
    # The part of the invoice line the share is taken of (negative for a reversal).
    base_amount = money_field()
    percent = models.DecimalField(max_digits=5, decimal_places=2)
    amount = money_field()  # the partner's share, rounded like invoice lines
    detail = models.JSONField(default=dict, blank=True)  # e.g. quantities of a usage share
    recognized_at = models.DateTimeField()  # the invoice's payment, or the credit note
    statement = models.ForeignKey(
        PartnerStatement, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["recognized_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice_line", "agreement"],
                condition=models.Q(kind="earning"),
                name="one_earning_per_line_and_agreement",
            ),
            models.UniqueConstraint(
                fields=["credit_note", "reverses"],
                condition=models.Q(kind="reversal"),
                name="one_reversal_per_credit_note_and_earning",
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "statement", "recognized_at"], name="entry_unstated")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


class Payout(models.Model):
    """What a statement pays the partner: a Stripe Connect transfer when Stripe is configured
    and the partner has a connected account, else recorded by the operator once sent."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="payouts")
    statement = models.OneToOneField(
        PartnerStatement, on_delete=models.PROTECT, related_name="payout"
    )
    amount = money_field()
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=14, choices=Partner.PayoutMethod.choices)
    destination = models.CharField(max_length=100)  # acct_… or the bank reference
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    stripe_transfer_id = models.CharField(max_length=255, blank=True)
    reference = models.CharField(max_length=200, blank=True)  # the operator's, for a bank transfer
    failure_message = models.CharField(max_length=300, blank=True)
    # Stripe transfer sends started: each retry after a failure is a new send, under its own
    # idempotency key, made only once Stripe says no transfer exists for the payout.
    send_attempts = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    paid_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} to {self.partner}"
