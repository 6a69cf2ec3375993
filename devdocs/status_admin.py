"""Admin for the status page's incidents: the operator posts them, with their updates.

Saving an update moves the incident to that update's status (the newest update wins) and
sets or clears `resolved_at` to match (devdocs.status.incident_sync_status), so the public
page never shows a resolved update under an incident still "investigating". Every change is
audited (AuditedAdminMixin for the form and the inline rows, the sync writes its own row).
"""

from django import forms
from django.contrib import admin
from django.utils import timezone

from devdocs import status
from devdocs.models import HealthBucket, Incident, IncidentUpdate
from keys.models import Endpoint
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


class EndpointChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Endpoint) -> str:
        version = obj.api_version
        return f"{version.product.code} {version.version}: {obj.method} {obj.path_template}"


class IncidentUpdateInline(admin.StackedInline):
    model = IncidentUpdate
    extra = 1
    fields = ["status", "body", "posted_at"]
    ordering = ["-posted_at"]


@admin.register(Incident)
class IncidentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["title", "status", "impact", "started_at", "resolved_at"]
    list_filter = ["status", "impact", "started_at"]
    search_fields = ["title", "updates__body"]
    date_hierarchy = "started_at"
    filter_horizontal = ["products", "endpoints"]
    inlines = [IncidentUpdateInline]
    readonly_fields = ["resolved_at", "created_at"]
    fieldsets = [
        (None, {"fields": ["title", "status", "impact", "started_at", "resolved_at"]}),
        (
            "Affected (leave both empty for the whole platform)",
            {"fields": ["products", "endpoints"]},
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("products")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "endpoints":
            kwargs["queryset"] = Endpoint.objects.select_related("api_version__product")
            kwargs["form_class"] = EndpointChoiceField
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # Once there are updates, the newest one decides the status: post an update instead.
        if obj is not None and obj.updates.exists():
            return [*self.readonly_fields, "status"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        status.incident_align_resolved(incident=obj, now=timezone.now())
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # After the inline rows are saved: the newest update sets the incident's status.
        status.incident_sync_status(actor=Actor.from_request(request), incident=form.instance)


@admin.register(HealthBucket)
class HealthBucketAdmin(admin.ModelAdmin):
    """The gate's measurements, read-only: they come from reports, never from hands."""

    list_display = ["endpoint", "environment", "hour", "calls", "errors"]
    list_filter = ["environment", "hour"]
    list_select_related = ["endpoint"]
    date_hierarchy = "hour"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
