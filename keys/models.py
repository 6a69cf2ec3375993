"""API keys: shown once, stored as a SHA-256 hash with a visible prefix."""

import json
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from portal.models import Organization, Project


class ApiKey(models.Model):
    class Environment(models.TextChoices):
        TEST = "test"
        LIVE = "live"

    class Status(models.TextChoices):
        ACTIVE = "active"
        ROTATING = "rotating"
        EXPIRED = "expired"
        REVOKED = "revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Denormalised from the project so every query can filter by org without a join.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="keys")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=200)
    environment = models.CharField(max_length=4, choices=Environment.choices)
    prefix = models.CharField(max_length=32, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    allowed_cidrs = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set on the old key when it is rotated: it keeps working until then.
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    # Test keys only: the secret, encrypted, so the docs can put the reader's own sandbox key
    # into code samples (as Stripe shows test keys again). Live keys are shown once, never.
    secret_encrypted = models.TextField(blank=True, default="", editable=False)
    # Set on the twin key of a marketplace app's OAuth access token: the app's id, carried
    # into the usage of every call the app makes (the marketplace knows the rest).
    app_id = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="apikey_org_time"),
            # Usage attributed to an app (revenue share, partner dashboard) looks keys up by
            # app; most keys have none, so only those that do are indexed.
            models.Index(
                fields=["app_id"], name="apikey_app", condition=models.Q(app_id__isnull=False)
            ),
        ]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status_at(self, now) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return self.Status.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.Status.EXPIRED
        if self.grace_ends_at is not None:
            return self.Status.ROTATING if self.grace_ends_at > now else self.Status.EXPIRED
        return self.Status.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class ApiProduct(models.Model):
    """An API the provider sells (e.g. "documents"); its versions carry the endpoints."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    private = models.BooleanField(default=False, help_text="Hidden from the public catalog.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]
        verbose_name = "API product"

    def __str__(self) -> str:
        return self.name


class ApiVersion(models.Model):
    """One version of a product, as the provider's OpenAPI document describes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(ApiProduct, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32)
    title = models.CharField(max_length=200, blank=True)
    base_path = models.CharField(max_length=255, blank=True)
    openapi = models.JSONField()
    # The document as uploaded: PostgreSQL's jsonb keeps no key order, and the docs and the
    # sandbox show operations, properties and examples in the author's order.
    openapi_text = models.TextField(blank=True, default="", editable=False)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    sunset_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["product", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["product", "version"], name="api_version_unique")
        ]
        verbose_name = "API version"

    def __str__(self) -> str:
        return f"{self.product.code} {self.version}"

    @cached_property
    def document(self) -> dict:
        """The OpenAPI document in the order it was written (falls back to `openapi`)."""
        if self.openapi_text:
            return json.loads(self.openapi_text)
        return self.openapi


class Endpoint(models.Model):
    """An operation of an API version: method + path template, and the group that gates it."""

    class GroupSource(models.TextChoices):
        DOCUMENT = "document"  # the operation's x-tollgate-group
        OPERATOR = "operator"  # set in admin
        DEFAULT = "default"  # read for GET/HEAD/OPTIONS, write for the rest

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_version = models.ForeignKey(ApiVersion, on_delete=models.CASCADE, related_name="endpoints")
    method = models.CharField(max_length=7)
    path_template = models.CharField(max_length=500)
    operation_id = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    tags = models.JSONField(default=list, blank=True)
    group = models.CharField(max_length=50)
    group_source = models.CharField(
        max_length=8, choices=GroupSource.choices, default=GroupSource.DEFAULT
    )
    # A meter code (billing's): calls are also metered there. A plain value, not a foreign
    # key, because keys sits below billing.
    meter_code = models.CharField(max_length=64, blank=True)
    deprecated = models.BooleanField(default=False)
    sunset_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["api_version", "path_template", "method"]
        constraints = [
            models.UniqueConstraint(
                fields=["api_version", "method", "path_template"], name="endpoint_unique_operation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path_template}"


class Block(models.Model):
    """A key or an IP range refused by the gate (code `blocked`) until lifted or expired."""

    class Reason(models.TextChoices):
        ABUSE = "abuse"
        FRAUD = "fraud"
        CUSTOMER = "customer_request"
        AUTOMATIC = "automatic"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The org whose key is blocked; empty for the operator's IP blocks, which apply to all.
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="blocks"
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="blocks"
    )
    ip_network = models.CharField(max_length=64, blank=True)
    reason_code = models.CharField(max_length=20, choices=Reason.choices)
    reason = models.TextField(blank=True)
    created_by = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(api_key__isnull=False, ip_network="")
                    | models.Q(api_key__isnull=True) & ~models.Q(ip_network="")
                ),
                name="block_key_or_ip",
            )
        ]

    def __str__(self) -> str:
        return f"{self.api_key or self.ip_network} ({self.reason_code})"

    def is_active_at(self, now) -> bool:
        if self.lifted_at is not None and self.lifted_at <= now:
            return False
        return self.expires_at is None or self.expires_at > now
