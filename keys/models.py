"""API keys: shown once, stored as a SHA-256 hash with a visible prefix."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

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

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="apikey_org_time")]
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
