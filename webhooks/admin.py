"""Django admin for events and webhooks: read-only rows, disable/enable through the services.

Endpoints are created by customers (portal or API); their secrets never reach admin. The
operator may disable an endpoint that misbehaves, or enable one again, and sees every event,
delivery and attempt, as the customer does in the delivery log.
"""

from django.contrib import admin, messages

from common.errors import TollgateError
from portal.audit import Actor
from webhooks import endpoints
from webhooks.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

SECRET_FIELDS = ("secret_encrypted", "previous_secret_encrypted")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "organization", "environment", "status", "failing_since", "created_at"]
    list_filter = ["environment", "status", "created_at"]
    search_fields = ["url", "description", "organization__slug"]
    list_select_related = ["organization"]
    exclude = SECRET_FIELDS
    readonly_fields = [
        field.name for field in WebhookEndpoint._meta.fields if field.name not in SECRET_FIELDS
    ]
    actions = ["disable_endpoints", "enable_endpoints"]

    def has_change_permission(self, request, obj=None) -> bool:
        # The actions below need it (Django's own permission check); every field stays
        # read-only.
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Disable selected endpoints")
    def disable_endpoints(self, request, queryset):
        actor = Actor.from_request(request)
        for endpoint in queryset:
            endpoints.webhook_endpoint_disable(
                actor=actor, endpoint=endpoint, reason="Disabled by the operator."
            )
        self.message_user(request, f"{queryset.count()} endpoint(s) disabled.", messages.SUCCESS)

    @admin.action(description="Enable selected endpoints")
    def enable_endpoints(self, request, queryset):
        actor = Actor.from_request(request)
        enabled = 0
        for endpoint in queryset:
            try:
                endpoints.webhook_endpoint_enable(actor=actor, endpoint=endpoint)
            except TollgateError as error:
                self.message_user(request, f"{endpoint.url}: {error.detail}", messages.ERROR)
            else:
                enabled += 1
        self.message_user(request, f"{enabled} endpoint(s) enabled.", messages.SUCCESS)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "organization", "environment", "created_at"]
    list_filter = ["type", "environment", "created_at"]
    search_fields = ["id", "type", "organization__slug"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["event__id", "endpoint__url"]
    list_select_related = ["event", "endpoint"]
    raw_id_fields = ["event", "endpoint"]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "endpoint", "status_code", "duration_ms", "trigger", "attempted_at"]
    list_filter = ["trigger", "attempted_at"]
    search_fields = ["event_id", "endpoint__url"]
    list_select_related = ["endpoint"]
    raw_id_fields = ["delivery", "endpoint"]
    date_hierarchy = "attempted_at"
