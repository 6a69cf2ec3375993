"""Events, webhook endpoints, and the outbox of deliveries with every attempt's record.

An Event and one Delivery per matching endpoint are written in the transaction of the change
that caused them (webhooks.services.emit); workers deliver from those rows, whose
`next_attempt_at` lives here, in PostgreSQL, not in the broker.
"""

import uuid

from django.db import models
from django.utils import timezone

from portal.models import Organization


def new_event_id() -> str:
    """The event id, which is also the `webhook-id` header: `msg_` + 32 hex digits."""
    return f"msg_{uuid.uuid4().hex}"


class WebhookEndpoint(models.Model):
    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"

    class Environment(models.TextChoices):
        TEST = "test"
        LIVE = "live"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(default=list, blank=True)  # empty: every event type
    environment = models.CharField(
        max_length=4, choices=Environment.choices, default=Environment.LIVE
    )
    # Secrets are `whsec_` + base64, stored encrypted (webhooks.secrets); during a rotation
    # the previous one keeps signing beside the new one until `previous_secret_expires_at`.
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ENABLED)
    disabled_reason = models.CharField(max_length=200, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Set at the first failure after a success; an endpoint failing for 5 days is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class Event(models.Model):
    id = models.CharField(max_length=40, primary_key=True, default=new_event_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    environment = models.CharField(max_length=4, default="live")
    # The body sent: {"id", "type", "version", "created_at", "organization", "data"}.
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="event_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class Delivery(models.Model):
    """One event to one endpoint, until it succeeds or its retries are exhausted."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt (or for a worker to claim it)
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # retries exhausted, or the endpoint was disabled

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker holds the delivery until then; the sweeper hands an expired lease to another.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Asked for by a person (re-delivery, replay, test): its attempts are logged as manual.
    manual = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["endpoint", "created_at"], name="delivery_endpoint_time"),
            # The first successful delivery of an org (its onboarding checklist), found
            # without reading the failures of an endpoint that never succeeded.
            models.Index(
                fields=["endpoint", "finished_at"],
                condition=models.Q(status="succeeded"),
                name="delivery_succeeded_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class DeliveryAttempt(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    # Denormalized for the per-endpoint log (newest first, filtered) without joins.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=40)
    attempted_at = models.DateTimeField(default=timezone.now)
    request_headers = models.JSONField(default=dict)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)  # the first 20 KB
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    # manual: a re-delivery or replay asked for by a person, not a scheduled retry
    trigger = models.CharField(max_length=10, default="scheduled")

    class Meta:
        ordering = ["-attempted_at"]
        indexes = [
            models.Index(fields=["endpoint", "attempted_at"], name="attempt_endpoint_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.status_code or self.error}"
