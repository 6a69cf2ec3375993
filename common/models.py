"""Stored responses for Idempotency-Key replays."""

from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, replayed for 24 hours.

    `scope_hash` is the SHA-256 of the caller's credential, so two callers may use the same
    key without seeing each other's responses. A row with no status is in flight: a
    concurrent retry gets 409 rather than running the request twice.
    """

    scope_hash = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    response_body = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope_hash", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
