"""Developer docs portal (DOCS-1..7): what the operator writes and what the gate measures.

The reference, the sandbox and the collections need no tables: they are read from the
ApiVersion's OpenAPI document. Stored here are the operator's own words (guides that
override the files in docs/portal/, incidents, changelog entries, deprecations), the
gate's measured call outcomes per endpoint and hour, and each organization's onboarding
milestones.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from keys.models import ApiProduct, ApiVersion, Endpoint
from portal.models import Organization


class Guide(models.Model):
    """A guide written in admin: overrides the file docs/portal/<slug>.md, or adds a new one,
    so an operator can fix a quickstart without a deploy."""

    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=300, blank=True)
    body = models.TextField(
        help_text="Markdown. {{ api_key }}, {{ base_url }} and "
        "{{ sandbox_url }} are replaced with the reader's own values."
    )
    position = models.PositiveIntegerField(default=100, help_text="Lower comes first.")
    published = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self) -> str:
        return self.title


class Incident(models.Model):
    """An incident the operator posts on the status page, with its updates."""

    class Status(models.TextChoices):
        INVESTIGATING = "investigating"
        IDENTIFIED = "identified"
        MONITORING = "monitoring"
        RESOLVED = "resolved"

    class Impact(models.TextChoices):
        NONE = "none"
        MINOR = "minor"
        MAJOR = "major"
        CRITICAL = "critical"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=13, choices=Status.choices, default=Status.INVESTIGATING)
    impact = models.CharField(max_length=8, choices=Impact.choices, default=Impact.MINOR)
    # Affected parts: whole products and/or single endpoints (none: the whole platform).
    products = models.ManyToManyField(ApiProduct, blank=True, related_name="incidents")
    endpoints = models.ManyToManyField(Endpoint, blank=True, related_name="incidents")
    started_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["resolved_at", "-started_at"], name="incident_open")]

    def __str__(self) -> str:
        return self.title


class IncidentUpdate(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=13, choices=Incident.Status.choices)
    body = models.TextField()
    posted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-posted_at"]

    def __str__(self) -> str:
        return f"{self.incident} · {self.status}"


class HealthBucket(models.Model):
    """Outcomes of the calls to one endpoint in one hour, as the gate measured them.

    Latency is kept as a histogram over fixed bounds (devdocs/health.py), so percentiles
    over any span are computed by adding buckets, never by storing every call.
    """

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    environment = models.CharField(max_length=4)
    hour = models.DateTimeField()
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)  # 5xx answers and unanswered calls
    latency_ms_total = models.FloatField(default=0)
    histogram = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "environment", "hour"], name="health_bucket_unique"
            )
        ]
        indexes = [models.Index(fields=["environment", "hour"], name="health_env_hour")]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.environment} {self.hour:%Y-%m-%d %H}h"


class ChangelogEntry(models.Model):
    """An entry of the public changelog; unpublished while `published_at` is empty."""

    class Kind(models.TextChoices):
        ADDED = "added"
        CHANGED = "changed"
        DEPRECATED = "deprecated"
        REMOVED = "removed"
        FIXED = "fixed"
        SECURITY = "security"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=120, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Markdown.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CHANGED)
    product = models.ForeignKey(
        ApiProduct, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_version = models.ForeignKey(
        ApiVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-published_at", "-created_at"]
        verbose_name_plural = "changelog entries"

    def __str__(self) -> str:
        return self.title


class Deprecation(models.Model):
    """A deprecation notice for an endpoint, or a whole API version when `endpoint` is empty.

    Saving one through devdocs.changelog services also marks the endpoint (or version)
    deprecated with the same sunset date, so the gate's `Deprecation`/`Sunset` headers and
    this notice never disagree.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_version = models.ForeignKey(
        ApiVersion, on_delete=models.CASCADE, related_name="deprecations"
    )
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deprecations"
    )
    announced_at = models.DateTimeField(default=timezone.now)
    sunset_at = models.DateTimeField()
    replacement = models.CharField(
        max_length=300, blank=True, help_text="What to call instead, e.g. 'POST /v2/documents'."
    )
    migration_guide = models.TextField(blank=True, help_text="Markdown.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["sunset_at"]

    def __str__(self) -> str:
        target = self.endpoint or self.api_version
        return f"{target} sunsets {self.sunset_at:%Y-%m-%d}"


class DeprecationNotice(models.Model):
    """One e-mail per deprecation and organization that called it: never sent twice."""

    id = models.BigAutoField(primary_key=True)
    deprecation = models.ForeignKey(Deprecation, on_delete=models.CASCADE, related_name="notices")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deprecation", "organization"], name="deprecation_notice_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.deprecation_id} → {self.organization_id}"


class OnboardingMilestone(models.Model):
    """The first time an organization reached a step of its onboarding, found in real data
    (keys, the usage ledger, webhook deliveries) and kept so it is found only once."""

    class Step(models.TextChoices):
        KEY_CREATED = "key_created"
        FIRST_SANDBOX_CALL = "first_sandbox_call"
        FIRST_WEBHOOK = "first_webhook"
        FIRST_LIVE_CALL = "first_live_call"

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="milestones"
    )
    step = models.CharField(max_length=20, choices=Step.choices)
    reached_at = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["reached_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "step"], name="milestone_once")
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.step}"
