"""Django admin for API keys: read-only rows, revocation through keys.services."""

import ipaddress

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from common.errors import TollgateError
from keys import services
from keys.models import ApiKey, ApiProduct, ApiVersion, Block, Endpoint
from keys.openapi import parse_openapi
from keys.selectors import key_status_q
from portal.admin_audit import AuditedAdminMixin
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


class ApiVersionUploadForm(forms.ModelForm):
    """Upload goes through api_version_create, so admin refuses what the API refuses."""

    product_code = forms.SlugField(max_length=64, help_text="e.g. documents (created if new)")
    document = forms.JSONField(help_text="The OpenAPI 3 document, as JSON.")

    class Meta:
        model = ApiVersion
        fields = ["version"]

    def _post_clean(self):
        """No model validation here: the row is built by api_version_create on save, which
        creates the product if it is new and checks what the model would."""

    def clean_document(self):
        document = self.cleaned_data["document"]
        try:
            parse_openapi(document)
        except TollgateError as error:
            reasons = [f"{item['field']}: {item['detail']}" for item in error.extra["errors"]]
            raise forms.ValidationError(reasons or [error.detail]) from error
        return document

    def clean(self):
        cleaned = super().clean()
        code, version = cleaned.get("product_code"), cleaned.get("version")
        if (
            code
            and version
            and ApiVersion.objects.filter(product__code=code, version=version).exists()
        ):
            self.add_error("version", f"{code} {version} exists; upload a new version.")
        return cleaned


class EndpointInline(admin.TabularInline):
    model = Endpoint
    extra = 0
    fields = [
        "method",
        "path_template",
        "operation_id",
        "group",
        "group_source",
        "meter_code",
        "deprecated",
        "sunset_at",
    ]
    readonly_fields = ["method", "path_template", "operation_id", "group_source", "deprecated"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiProduct)
class ApiProductAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "private", "created_at"]
    list_filter = ["private"]
    search_fields = ["code", "name"]


@admin.register(ApiVersion)
class ApiVersionAdmin(admin.ModelAdmin):
    list_display = [
        "product",
        "version",
        "base_path",
        "endpoint_count",
        "deprecated_at",
        "sunset_at",
        "created_at",
    ]
    list_filter = ["product"]
    search_fields = ["product__code", "version", "title"]
    inlines = [EndpointInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiVersionUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["product_code", "version", "document"]
        return ["product", "version", "title", "base_path", "deprecated_at", "sunset_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["product", "version", "title", "base_path"] if obj else []

    def get_inlines(self, request, obj):
        return [EndpointInline] if obj else []

    @admin.display(description="endpoints")
    def endpoint_count(self, obj: ApiVersion) -> int:
        return obj.endpoints.count()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.api_version_create(
            actor=Actor.from_request(request),
            product_code=form.cleaned_data["product_code"],
            version=form.cleaned_data["version"],
            document=form.cleaned_data["document"],
        )
        # Admin goes on with `obj` (log entry, message): make it the row just created.
        obj.__dict__.update(created.__dict__)
        obj.product = created.product

    def save_formset(self, request, form, formset, change):
        """Group and meter overrides go through endpoint_update (audited)."""
        actor = Actor.from_request(request)
        for endpoint_form in formset.forms:
            if endpoint_form.has_changed() and endpoint_form.instance.pk:
                original = Endpoint.objects.get(pk=endpoint_form.instance.pk)
                services.endpoint_update(
                    actor=actor,
                    endpoint=original,
                    group=endpoint_form.cleaned_data.get("group"),
                    meter_code=endpoint_form.cleaned_data.get("meter_code"),
                    sunset_at=endpoint_form.cleaned_data.get("sunset_at"),
                )


class BlockForm(forms.ModelForm):
    class Meta:
        model = Block
        fields = ["api_key", "ip_network", "reason_code", "reason", "expires_at"]

    def clean_ip_network(self):
        value = self.cleaned_data.get("ip_network", "").strip()
        if value:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as error:
                raise forms.ValidationError("Give an IPv4 or IPv6 address or CIDR.") from error
        return value

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("api_key")) == bool(cleaned.get("ip_network")):
            raise forms.ValidationError("Block either a key or an IP range.")
        return cleaned


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin):
    """Blocks are made through keys.services.block_create (audited, and the gate hears of
    them at once); lifting is an action, so history is kept."""

    list_display = [
        "__str__",
        "organization",
        "reason_code",
        "created_by",
        "created_at",
        "expires_at",
        "lifted_at",
    ]
    list_filter = ["reason_code", ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["ip_network", "api_key__prefix", "organization__slug", "reason"]
    form = BlockForm
    fields = ["api_key", "ip_network", "reason_code", "reason", "expires_at"]
    raw_id_fields = ["api_key"]
    actions = ["lift_blocks"]

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = services.block_create(
            actor=Actor.from_request(request),
            reason_code=obj.reason_code,
            api_key=obj.api_key,
            ip_network=obj.ip_network or None,
            reason=obj.reason,
            expires_at=obj.expires_at,
        )
        obj.__dict__.update(created.__dict__)

    @admin.action(description="Lift selected blocks")
    def lift_blocks(self, request, queryset):
        actor = Actor.from_request(request)
        for block in queryset:
            services.block_lift(actor=actor, block=block)
        self.message_user(request, "Blocks lifted.", messages.SUCCESS)
