"""Stored idempotent responses, visible to operators for support."""

from django.contrib import admin

from common.models import IdempotencyRecord


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["key", "method", "path", "status_code", "created_at"]
    list_filter = ["method", "status_code"]
    search_fields = ["key", "path"]
    exclude = ["response_body", "scope_hash"]
    readonly_fields = [
        "key",
        "method",
        "path",
        "status_code",
        "content_type",
        "request_fingerprint",
        "created_at",
        "completed_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
