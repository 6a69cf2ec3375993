"""Meters, the append-only usage ledger, and the rollups that queries and invoices read."""

import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone

from common.errors import Conflict
from keys.models import ApiKey
from portal.models import Organization, Project

# Rollups key on every dimension; "no project" / "no key" is this UUID rather than NULL, so a
# unique constraint identifies the bucket on every database.
NO_ID = uuid.UUID(int=0)
QUANTITY_DIGITS = 38
QUANTITY_DECIMALS = 12


def quantity_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=QUANTITY_DIGITS, decimal_places=QUANTITY_DECIMALS, **kwargs
    )


class Meter(models.Model):
    """What is measured, how events aggregate, and how customers see the unit."""

    class Aggregation(models.TextChoices):
        COUNT = "count"
        SUM = "sum"
        MAX = "max"
        UNIQUE_COUNT = "unique_count"
        LAST = "last"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=64)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    unique_property = models.CharField(max_length=100, blank=True)
    display_unit = models.CharField(max_length=64, blank=True)
    display_factor = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal(1))
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def shown_unit(self) -> str:
        return self.display_unit or self.unit


class UsageEvent(models.Model):
    """One row of the ledger. Never updated or deleted: corrections are reversal rows.

    On PostgreSQL the table is partitioned by month on `occurred_at` and a trigger refuses
    UPDATE and DELETE (migration 0002). Foreign keys carry no database constraint: the ledger
    outlives what it references, and its distribution key (organization) can move to Citus.
    """

    class Source(models.TextChoices):
        API = "api"
        GATE = "gate"
        CORRECTION = "correction"

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    project = models.ForeignKey(
        Project, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    environment = models.CharField(max_length=4)
    event_id = models.CharField(max_length=255)
    quantity = quantity_field()
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    properties = models.JSONField(default=dict)
    endpoint = models.CharField(max_length=255, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    reverses = models.ForeignKey(
        "self", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    reason = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["organization", "occurred_at"], name="usage_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.meter_id} {self.quantity}"


class UsageEventId(models.Model):
    """Every event id ever accepted per customer: the dedupe record, kept forever."""

    pk = models.CompositePrimaryKey("organization_id", "event_id")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    event_id = models.CharField(max_length=255)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.event_id


class UsageRollup(models.Model):
    """Hourly aggregate of one bucket: customer, meter, environment, project, key, endpoint.

    Maintained in the same transaction as the ledger insert, so a query right after a 202
    sees the event. `last_*` keep the latest event by time (ties: by ledger id) for `last`
    meters; unique values for `unique_count` live in UsageUniqueValue.
    """

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    environment = models.CharField(max_length=4)
    project_id = models.UUIDField(default=NO_ID)
    api_key_id = models.UUIDField(default=NO_ID)
    endpoint = models.CharField(max_length=255, blank=True, default="")
    hour = models.DateTimeField()
    event_count = models.BigIntegerField(default=0)
    quantity_sum = quantity_field(default=Decimal(0))
    quantity_max = quantity_field(null=True)
    last_quantity = quantity_field(null=True)
    last_at = models.DateTimeField(null=True)
    last_ledger_id = models.BigIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "meter",
                    "environment",
                    "hour",
                    "project_id",
                    "api_key_id",
                    "endpoint",
                ],
                name="usage_rollup_bucket",
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "meter", "environment", "hour"], name="usage_rollup_query"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.hour:%Y-%m-%d %H}:00 {self.quantity_sum}"


class UsageUniqueValue(models.Model):
    """Distinct values seen per rollup bucket, so unique counts over any window stay exact."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    environment = models.CharField(max_length=4)
    project_id = models.UUIDField(default=NO_ID)
    api_key_id = models.UUIDField(default=NO_ID)
    endpoint = models.CharField(max_length=255, blank=True, default="")
    hour = models.DateTimeField()
    value = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "meter",
                    "environment",
                    "hour",
                    "project_id",
                    "api_key_id",
                    "endpoint",
                    "value",
                ],
                name="usage_unique_value",
            )
        ]

    def __str__(self) -> str:
        return self.value


class UsageCorrection(models.Model):
    """Links a ledger row to its reversal; the unique original makes a second reversal fail."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    original_ledger_id = models.BigIntegerField(unique=True)
    reversal_ledger_id = models.BigIntegerField(unique=True)
    event_id = models.CharField(max_length=255)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"correction of {self.event_id}"


# --- Packaging and pricing --------------------------------------------------------------
def money_field(**kwargs) -> models.DecimalField:
    """Prices may carry many decimals (0.00042 per request); billed amounts are rounded."""
    return models.DecimalField(max_digits=30, decimal_places=12, **kwargs)


class Plan(models.Model):
    """A product tier (Free, Pro, ...). Its prices live in immutable PlanVersions."""

    class Interval(models.TextChoices):
        MONTH = "month"
        YEAR = "year"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tier_rank = models.PositiveIntegerField(default=0, help_text="Higher is a bigger plan.")
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    currency = models.CharField(max_length=3, default="USD")
    trial_days = models.PositiveIntegerField(default=0)
    public = models.BooleanField(default=True)
    # Periods start on the 1st of the month (or year) in the org's billing time zone instead
    # of on the anniversary of the subscription; the first period is prorated.
    calendar_billing = models.BooleanField(default=False)
    # The base fee of a period is billed on the invoice that opens it rather than in arrears.
    pay_in_advance = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["tier_rank", "code"]

    def __str__(self) -> str:
        return self.name

    def current_version(self) -> "PlanVersion | None":
        return self.versions.order_by("-number").first()


class PlanVersion(models.Model):
    """The prices and entitlements of a plan from one point on.

    Immutable once anyone subscribes: a price change makes a new version, and subscribers
    stay on theirs until migrated (grandfathering).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    base_fee = money_field(default=Decimal(0))
    # Committed use: a minimum spend per period, and the discount it earns on usage.
    minimum_commitment = money_field(null=True, blank=True)
    commitment_discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True
    )
    entitlements = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["plan", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="plan_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} v{self.number}"

    def save(self, *args, **kwargs):
        # The last line of defence behind the admin's read-only form and the catalog (which
        # offers no update): a version someone subscribed to never changes its prices.
        if not self._state.adding and self.pk is not None and self.is_locked:
            _refuse_changes(PlanVersion, self, LOCKED_VERSION_FIELDS, f"{self}")
        super().save(*args, **kwargs)

    @property
    def is_locked(self) -> bool:
        return self.phases.exists()


class Charge(models.Model):
    """A metered charge of a plan version: a meter and its price model."""

    class Model(models.TextChoices):
        PER_UNIT = "per_unit"
        GRADUATED = "graduated"
        VOLUME = "volume"
        PACKAGE = "package"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="charges")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=10, choices=Model.choices)
    free_units = quantity_field(default=Decimal(0))
    unit_amount = money_field(default=Decimal(0))
    # [{"up_to": "1000000" | null, "unit_amount": "0.0004", "flat_amount": "0"}, ...]
    tiers = models.JSONField(default=list, blank=True)
    package_size = quantity_field(null=True, blank=True)
    package_amount = money_field(default=Decimal(0))
    minimum = money_field(null=True, blank=True)
    maximum = money_field(null=True, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "meter"], name="charge_one_per_meter")
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.model}"

    def save(self, *args, **kwargs):
        version = PlanVersion.objects.filter(pk=self.version_id).first()
        if version is not None and version.is_locked:
            if self._state.adding:
                raise PlanVersionLocked(f"{version} has subscribers; add charges to a new version.")
            _refuse_changes(Charge, self, LOCKED_CHARGE_FIELDS, f"{version}")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.version.is_locked:
            raise PlanVersionLocked(f"{self.version} has subscribers; its charges stay.")
        return super().delete(*args, **kwargs)


LOCKED_VERSION_FIELDS = (
    "plan_id",
    "number",
    "base_fee",
    "minimum_commitment",
    "commitment_discount_percent",
    "entitlements",
)
LOCKED_CHARGE_FIELDS = (
    "version_id",
    "meter_id",
    "position",
    "model",
    "free_units",
    "unit_amount",
    "tiers",
    "package_size",
    "package_amount",
    "minimum",
    "maximum",
)


class PlanVersionLocked(Conflict):
    code = "plan_version_locked"


def _refuse_changes(model, obj, fields: tuple[str, ...], label: str) -> None:
    """Raises if `obj` differs from its stored row in any of `fields` (saving unchanged
    values, as the admin does for a read-only form, is allowed)."""
    stored = model.objects.filter(pk=obj.pk).values(*fields).first()
    if stored is None:
        return
    changed = sorted(name for name in fields if stored[name] != getattr(obj, name))
    if changed:
        raise PlanVersionLocked(
            f"{label} has subscribers, so its prices cannot change ({', '.join(changed)}); "
            "create a new version instead."
        )


class AddOn(models.Model):
    """Sold on top of a plan: throughput, retention, support, quota packs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default="USD")
    price = money_field(default=Decimal(0))
    # What it adds: {"quotas": [{"meter", "limit"}], "rate_limits": [...], "retention_days",
    #                "support_level", "features": {...}}
    entitlements = models.JSONField(default=dict, blank=True)
    public = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Coupon(models.Model):
    class Kind(models.TextChoices):
        PERCENT = "percent"
        AMOUNT = "amount"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=7, choices=Kind.choices)
    percent_off = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    amount_off = money_field(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    duration_periods = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many periods it applies to; empty: forever."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Subscription(models.Model):
    """An organization's subscription: at most one that is not canceled, per organization."""

    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        CANCELED = "canceled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="subscriptions"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField()
    # Anniversary billing: periods start at started_at and repeat every interval.
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    coupon = models.ForeignKey(Coupon, null=True, blank=True, on_delete=models.PROTECT)
    coupon_periods_used = models.PositiveIntegerField(default=0)
    # The customer's own ceiling for a period's bill: past it, the gate refuses live calls.
    spend_cap = money_field(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=~models.Q(status="canceled"),
                name="one_open_subscription_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} ({self.status})"


class SubscriptionPhase(models.Model):
    """Which plan version applied when. A plan change closes one phase and opens the next;
    a grandfathering migration is a phase that starts in the future."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="phases")
    plan_version = models.ForeignKey(PlanVersion, on_delete=models.PROTECT, related_name="phases")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["subscription", "starts_at"]

    def __str__(self) -> str:
        return f"{self.plan_version} from {self.starts_at:%Y-%m-%d}"


class SubscriptionAddOn(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="addons")
    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(default=1)
    added_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["added_at"]

    def __str__(self) -> str:
        return f"{self.addon} x{self.quantity}"


class CreditGrant(models.Model):
    """Prepaid credit; invoices draw from the grants that expire first."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="credit_grants"
    )
    currency = models.CharField(max_length=3, default="USD")
    amount = money_field()
    remaining = money_field()
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    # At period close, unused credit of a rolling grant moves to a new grant, up to this cap.
    rolls_over = models.BooleanField(default=False)
    rollover_cap = money_field(null=True, blank=True)
    rolled_over_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["expires_at", "granted_at"]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} for {self.organization}"


# --- Invoicing (docs/billing.md) ------------------------------------------------------------
class BillingProfile(models.Model):
    """Who is billed and how: address and tax id on invoices, the time zone periods close in,
    the Stripe customer, and whether payment is collected automatically."""

    class Collection(models.TextChoices):
        AUTOMATIC = "automatic"  # charge the saved payment method (Stripe)
        MANUAL = "manual"  # send the invoice; the operator marks it paid

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="billing_profile"
    )
    legal_name = models.CharField(max_length=200, blank=True)
    billing_email = models.EmailField(blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    region = models.CharField(max_length=100, blank=True, help_text="State or province code.")
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2.")
    tax_id = models.CharField(max_length=64, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    collection = models.CharField(
        max_length=9, choices=Collection.choices, default=Collection.AUTOMATIC
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_payment_method_id = models.CharField(max_length=255, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Billing profile of {self.organization}"


class TaxRate(models.Model):
    """A tax rate the operator charges customers in a country (or one region of it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, help_text="Shown on invoices, e.g. 'VAT' or 'GST'.")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2.")
    region = models.CharField(max_length=100, blank=True, help_text="Empty: the whole country.")
    percent = models.DecimalField(max_digits=7, decimal_places=4)
    inclusive = models.BooleanField(
        default=False, help_text="Prices already include the tax (it is carved out of them)."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["country", "region"]
        constraints = [
            models.UniqueConstraint(
                fields=["country", "region"],
                condition=models.Q(active=True),
                name="one_active_tax_rate_per_place",
            )
        ]

    def __str__(self) -> str:
        place = f"{self.country}-{self.region}" if self.region else self.country
        return f"{self.name} {self.percent}% ({place})"


class DocumentSequence(models.Model):
    """The last number given per prefix ("INV-2026", "CN-2026"), taken under a row lock in the
    transaction that finalizes, so numbers have no gaps even when finalizations race."""

    prefix = models.CharField(max_length=20, primary_key=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.prefix}: {self.last_number}"


class Invoice(models.Model):
    class Kind(models.TextChoices):
        PERIOD = "period"  # closes a period: its usage, its fees
        OPENING = "opening"  # a pay-in-advance plan's first base fee, at subscription start

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="invoices"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="invoices"
    )
    number = models.CharField(max_length=32, unique=True, null=True, blank=True)
    kind = models.CharField(max_length=7, choices=Kind.choices, default=Kind.PERIOD)
    status = models.CharField(max_length=13, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    plan = models.CharField(max_length=64)
    plan_version = models.PositiveIntegerField()
    # Usage counted up to this instant; refreshed while the invoice is a draft.
    usage_measured_at = models.DateTimeField()
    subtotal = money_field(default=Decimal(0))
    discount = money_field(default=Decimal(0))
    credits = money_field(default=Decimal(0))
    tax = money_field(default=Decimal(0))
    total = money_field(default=Decimal(0))
    amount_paid = money_field(default=Decimal(0))
    amount_credited = money_field(default=Decimal(0))  # by credit notes
    # What the invoice says about the customer and tax, frozen when it is finalized.
    customer = models.JSONField(default=dict)
    tax_rate = models.JSONField(null=True, blank=True)
    # The coupon that discounted this period, if any (it counts one of the coupon's periods).
    coupon_code = models.CharField(max_length=64, blank=True)
    collection = models.CharField(max_length=9, default=BillingProfile.Collection.MANUAL)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finalize_after = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)
    # Payment collection (Stripe) and dunning.
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    payment_attempts = models.PositiveIntegerField(default=0)
    next_payment_attempt_at = models.DateTimeField(null=True, blank=True)
    last_payment_error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-period_start", "-created_at"]
        constraints = [
            # One invoice per subscription period, whatever runs the close and how often.
            models.UniqueConstraint(
                fields=["subscription", "period_start", "kind"], name="one_invoice_per_period"
            )
        ]
        indexes = [
            models.Index(fields=["status", "finalize_after"], name="invoice_finalize_due"),
            models.Index(fields=["status", "next_payment_attempt_at"], name="invoice_dunning_due"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {self.period_start:%Y-%m-%d}"

    @property
    def amount_due(self) -> Decimal:
        return max(self.total - self.amount_paid - self.amount_credited, Decimal(0))


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        BASE_FEE = "base_fee"
        BASE_FEE_ADVANCE = "base_fee_advance"  # next period's fee, on a pay-in-advance plan
        ADVANCE_APPLIED = "advance_applied"  # this period's fee, already billed in advance
        USAGE = "usage"
        ADJUSTMENT = "adjustment"  # late usage of an already-finalized period
        COMMITMENT_DISCOUNT = "commitment_discount"
        COMMITMENT_TRUE_UP = "commitment_true_up"
        ADDON = "addon"
        DISCOUNT = "discount"
        CREDIT = "credit"
        TAX = "tax"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=300)
    meter = models.CharField(max_length=64, blank=True)
    # The (immutable) charge a usage line priced, so a late adjustment re-prices it the same.
    charge = models.ForeignKey(
        Charge, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    quantity = quantity_field(null=True, blank=True)
    amount = money_field()
    tiers = models.JSONField(default=list, blank=True)
    # Per-endpoint quantities of a usage line (the amount is the line's, priced as a whole).
    breakdown = models.JSONField(default=list, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    # An adjustment line re-bills this invoice's line for usage that arrived after it was
    # finalized; `received_after` .. `received_until` select the late ledger rows.
    adjusts = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="adjustments"
    )
    received_after = models.DateTimeField(null=True, blank=True)
    received_until = models.DateTimeField(null=True, blank=True)
    explanation = models.TextField(blank=True)  # e.g. why usage was anomalous
    # The add-on an `addon` line bills (a paid marketplace app's price is one).
    addon = models.ForeignKey(
        AddOn, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["invoice", "position"]

    def __str__(self) -> str:
        return self.description


class CreditNote(models.Model):
    """Reduces what an invoice asks for; on a paid invoice the amount becomes credit (or a
    refund when Stripe collected it)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    amount = money_field()
    reason = models.CharField(max_length=300)
    refunded = models.BooleanField(default=False)
    # The Stripe refund that gave the amount back: made by Tollgate for this note, or made in
    # Stripe's dashboard and recorded here by its webhook (billing.payments._on_refund).
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    credit_grant = models.ForeignKey(
        CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_refund_id"],
                condition=~models.Q(stripe_refund_id=""),
                name="creditnote_stripe_refund_unique",
            )
        ]

    def __str__(self) -> str:
        return self.number


class PaymentAttempt(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    amount = money_field()
    outcome = models.CharField(max_length=9, choices=Outcome.choices, default=Outcome.PENDING)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["invoice", "number"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "number"], name="payment_attempt_number")
        ]

    def __str__(self) -> str:
        return f"{self.invoice} attempt {self.number}: {self.outcome}"


class StripeEvent(models.Model):
    """An inbound Stripe webhook event, stored raw before it is processed (idempotently, by
    its Stripe id)."""

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class AlertThreshold(models.Model):
    """Tell me when usage of a meter, or the period's spend, reaches this much."""

    class Kind(models.TextChoices):
        USAGE = "usage"
        SPEND = "spend"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="alert_thresholds"
    )
    kind = models.CharField(max_length=5, choices=Kind.choices)
    meter = models.ForeignKey(Meter, null=True, blank=True, on_delete=models.PROTECT)
    value = quantity_field()
    # Set by the operator (customers see it but cannot change it) or by the customer.
    set_by_operator = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["kind", "value"]

    def __str__(self) -> str:
        what = self.meter.code if self.meter_id else "spend"
        return f"{what} >= {self.value}"


class AlertFiring(models.Model):
    """A threshold crossed in one period: the unique constraint makes it once per period."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    threshold = models.ForeignKey(
        AlertThreshold, null=True, blank=True, on_delete=models.CASCADE, related_name="firings"
    )
    # Soft-quota crossings from the gate have no threshold row: the quota is the threshold.
    source = models.CharField(max_length=32, default="threshold")
    # What fired: "threshold:<id>" or "soft_quota:<meter>"; unique per org and period.
    key = models.CharField(max_length=100)
    meter = models.CharField(max_length=64, blank=True)
    period_start = models.DateTimeField()
    value = quantity_field()
    limit = quantity_field()
    fired_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key", "period_start"], name="alert_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.meter} {self.value}/{self.limit}"


class UsageAnomaly(models.Model):
    """A day on which an org's usage of a meter was far outside its own trailing pattern."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    observed = quantity_field()
    median = quantity_field()
    mad = quantity_field()
    score = models.DecimalField(max_digits=20, decimal_places=4)
    explanation = models.TextField()
    detected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "meter", "day"], name="one_anomaly_per_meter_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.meter} {self.day}: {self.explanation}"
