"""Django admin for the changelog and deprecations (DOCS-7).

Entries are plain edits, audited by AuditedAdminMixin, with a "publish now" action.
Deprecations are saved and deleted only through devdocs.changelog services, which mark the
endpoint (or version) for the gate and write the deprecation's changelog entry; the form
runs the services' rules first, so a bad date or a foreign endpoint is a form error and
nothing changes.
"""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from common.errors import TollgateError
from devdocs import changelog
from devdocs.models import ChangelogEntry, Deprecation, DeprecationNotice
from keys.models import Endpoint
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


def _add_service_error(form: forms.Form, error: TollgateError) -> None:
    """A service's refusal as a form error on its field, or on the form."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.detail)


class ChangelogEntryForm(forms.ModelForm):
    class Meta:
        model = ChangelogEntry
        fields = ["title", "slug", "kind", "product", "api_version", "body", "published_at"]
        help_texts = {
            "published_at": "Empty: a draft. A future time: published then. Use the "
            "“Publish now” action to publish at once.",
        }

    def clean(self):
        cleaned = super().clean()
        product, version = cleaned.get("product"), cleaned.get("api_version")
        try:
            changelog.changelog_entry_check(
                slug=cleaned.get("slug") or "", product=product, api_version=version
            )
        except TollgateError as error:
            _add_service_error(self, error)
            return cleaned
        if product is None and version is not None:
            cleaned["product"] = version.product  # so the product filter finds it
            self.instance.product = version.product
        return cleaned


@admin.register(ChangelogEntry)
class ChangelogEntryAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = ChangelogEntryForm
    list_display = ["title", "kind", "product", "api_version", "state", "published_at"]
    list_filter = ["kind", "product", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "slug", "body"]
    list_select_related = ["product", "api_version", "api_version__product"]
    prepopulated_fields = {"slug": ("title",)}
    date_hierarchy = "created_at"
    actions = ["publish_now"]

    @admin.display(description="state")
    def state(self, obj: ChangelogEntry) -> str:
        if obj.published_at is None:
            return "draft"
        return "scheduled" if obj.published_at > timezone.now() else "published"

    def save_model(self, request, obj, form, change):
        obj.updated_at = timezone.now()  # the feed's <updated>
        super().save_model(request, obj, form, change)

    @admin.action(description="Publish now")
    def publish_now(self, request, queryset):
        published = changelog.changelog_entries_publish(
            actor=Actor.from_request(request), entries=queryset.order_by("pk")
        )
        self.message_user(
            request,
            f"{published} entr{'y' if published == 1 else 'ies'} published.",
            messages.SUCCESS,
        )


class EndpointChoiceField(forms.ModelChoiceField):
    """Endpoints named with their product and version: the same path exists in many."""

    def label_from_instance(self, obj: Endpoint) -> str:
        return f"{obj.api_version.product.code} {obj.api_version.version} · {obj}"


class DeprecationForm(forms.ModelForm):
    endpoint = EndpointChoiceField(
        queryset=Endpoint.objects.select_related("api_version__product").order_by(
            "api_version__product__code", "api_version__version", "path_template", "method"
        ),
        required=False,
        help_text="Empty: the whole API version is deprecated.",
    )

    class Meta:
        model = Deprecation
        fields = [
            "api_version",
            "endpoint",
            "announced_at",
            "sunset_at",
            "replacement",
            "migration_guide",
        ]
        help_texts = {
            "announced_at": "Now or in the past: saving marks the target for the gate at "
            "once (Deprecation and Sunset headers). To announce later, save it later.",
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            changelog.deprecation_check(
                api_version=cleaned.get("api_version"),
                endpoint=cleaned.get("endpoint"),
                announced_at=cleaned.get("announced_at"),
                sunset_at=cleaned.get("sunset_at"),
                deprecation=self.instance if self.instance.pk else None,
            )
        except TollgateError as error:
            _add_service_error(self, error)
        return cleaned


class DeprecationNoticeInline(admin.TabularInline):
    model = DeprecationNotice
    extra = 0
    fields = ["organization", "recipients", "sent_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Deprecation)
class DeprecationAdmin(admin.ModelAdmin):
    form = DeprecationForm
    list_display = ["__str__", "api_version", "endpoint", "announced_at", "sunset_at", "notices"]
    list_filter = ["api_version__product", "sunset_at"]
    search_fields = ["endpoint__path_template", "replacement", "api_version__version"]
    list_select_related = ["api_version__product", "endpoint"]
    inlines = [DeprecationNoticeInline]
    actions = ["send_notices_now"]

    def get_inlines(self, request, obj):
        return [DeprecationNoticeInline] if obj is not None else []

    @admin.display(description="e-mailed orgs")
    def notices(self, obj: Deprecation) -> int:
        return obj.notices.count()

    def save_model(self, request, obj, form, change):
        actor = Actor.from_request(request)
        values = {
            name: form.cleaned_data.get(name)
            for name in ("api_version", "endpoint", "announced_at", "sunset_at")
        }
        values["replacement"] = form.cleaned_data.get("replacement") or ""
        values["migration_guide"] = form.cleaned_data.get("migration_guide") or ""
        if change:
            saved = changelog.deprecation_update(actor=actor, deprecation=obj, **values)
        else:
            saved = changelog.deprecation_create(actor=actor, **values)
        # Admin goes on with `obj` (log entry, message): make it the row just saved.
        obj.__dict__.update(saved.__dict__)
        if saved.sunset_at <= timezone.now():
            self.message_user(
                request,
                "The sunset is in the past: the gate already refuses calls to this target.",
                messages.WARNING,
            )

    def delete_model(self, request, obj):
        changelog.deprecation_delete(actor=Actor.from_request(request), deprecation=obj)

    def delete_queryset(self, request, queryset):
        for deprecation in queryset.order_by("pk"):
            self.delete_model(request, deprecation)

    @admin.action(description="E-mail the organizations that called these now")
    def send_notices_now(self, request, queryset):
        sent = sum(
            changelog.deprecation_notices_send(deprecation_id=deprecation.pk).sent
            for deprecation in queryset.order_by("pk")
        )
        self.message_user(request, f"{sent} organization(s) e-mailed.", messages.SUCCESS)
