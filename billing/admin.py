"""Django admin for metering: meters through services; the ledger read-only."""

from django.contrib import admin, messages

from billing import services
from billing.models import Meter, UsageCorrection, UsageEvent, UsageRollup
from common.errors import TollgateError
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


@admin.register(Meter)
class MeterAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """New meters go through meter_create (same validation as the API); once a meter exists
    only its labels may change, since its code and aggregation define what the ledger means."""

    list_display = [
        "code",
        "name",
        "unit",
        "aggregation",
        "unique_property",
        "display_unit",
        "display_factor",
        "created_at",
    ]
    list_filter = ["aggregation"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["created_at"]
        return ["code", "aggregation", "unique_property", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            created = services.meter_create(
                actor=Actor.from_request(request),
                code=obj.code,
                name=obj.name,
                unit=obj.unit,
                aggregation=obj.aggregation,
                unique_property=obj.unique_property,
                display_unit=obj.display_unit,
                display_factor=obj.display_factor,
            )
        except TollgateError as error:
            self.message_user(request, f"{error.detail} ({error.code})", messages.ERROR)
            return None
        obj.pk = created.pk
        obj._state.adding = False
        return None


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    """The ledger: append-only; corrections are made with POST /api/v1/usage/corrections."""

    list_display = [
        "id",
        "occurred_at",
        "organization",
        "meter",
        "environment",
        "quantity",
        "event_id",
        "source",
        "endpoint",
    ]
    list_filter = ["environment", "source", "meter"]
    search_fields = ["event_id", "request_id", "organization__slug"]
    list_select_related = ["organization", "meter"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "hour",
        "organization",
        "meter",
        "environment",
        "project_id",
        "api_key_id",
        "endpoint",
        "event_count",
        "quantity_sum",
        "quantity_max",
    ]
    list_filter = ["environment", "meter"]
    search_fields = ["organization__slug", "endpoint"]
    list_select_related = ["organization", "meter"]
    date_hierarchy = "hour"
    show_full_result_count = False


@admin.register(UsageCorrection)
class UsageCorrectionAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "event_id",
        "original_ledger_id",
        "reversal_ledger_id",
        "reason",
    ]
    search_fields = ["event_id", "organization__slug", "reason"]
