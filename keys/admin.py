"""Django admin for API keys: read-only rows, revocation through keys.services."""

from django.contrib import admin, messages
from django.utils import timezone

from keys import services
from keys.models import ApiKey
from keys.selectors import key_status_q
from portal.audit import Actor


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return ApiKey.Status.choices

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(key_status_q(self.value(), timezone.now()))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued by customers (portal or API); the secret never reaches admin."""

    list_display = [
        "prefix",
        "name",
        "organization",
        "project",
        "environment",
        "status",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["environment", StatusFilter, "created_at"]
    search_fields = ["prefix", "name", "organization__slug", "project__name"]
    list_select_related = ["organization", "project"]
    readonly_fields = [field.name for field in ApiKey._meta.fields if field.name != "key_hash"]
    exclude = ["key_hash"]
    actions = ["revoke_keys"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the audit trail and usage history keep pointing here

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        actor = Actor.from_request(request)
        for key in queryset:
            services.key_revoke(actor=actor, key=key)
        self.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)
