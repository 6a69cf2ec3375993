"""Meters, the append-only usage ledger, and the rollups that queries and invoices read."""

import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone

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
