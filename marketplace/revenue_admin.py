"""Operator admin for the marketplace's revenue share: agreements (made and ended through
marketplace.revenue, audited there) and the entries accrual wrote (read only)."""

from django import forms
from django.contrib import admin

from billing.admin import ReadOnlyAdmin
from common.errors import TollgateError
from marketplace.models import RevenueShareAgreement, RevenueShareEntry
from marketplace.revenue import (
    agreement_check,
    agreement_create,
    agreement_end,
    agreement_end_check,
)
from portal.audit import Actor


class AgreementForm(forms.ModelForm):
    """Checked by the service's own rules, errors shown by the field they concern."""

    percent = forms.DecimalField(
        required=False,
        min_value=0,
        max_value=100,
        decimal_places=2,
        help_text="Empty: the partner's tier's share.",
    )

    class Meta:
        model = RevenueShareAgreement
        fields = ["app", "basis", "percent", "starts_on", "ends_on", "note"]

    def _service_error(self, error: TollgateError) -> None:
        field = error.field if error.field in self.fields else None
        self.add_error(field, error.detail)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            if self.instance._state.adding:
                agreement_check(
                    app=cleaned["app"],
                    basis=cleaned["basis"],
                    percent=cleaned.get("percent"),
                    starts_on=cleaned["starts_on"],
                    ends_on=cleaned.get("ends_on"),
                )
            elif cleaned.get("ends_on") != self.instance.ends_on:
                if cleaned.get("ends_on") is None:
                    raise forms.ValidationError("An ended agreement cannot be reopened.")
                agreement_end_check(agreement=self.instance, ends_on=cleaned["ends_on"])
        except TollgateError as error:
            self._service_error(error)
        return cleaned


@admin.register(RevenueShareAgreement)
class RevenueShareAgreementAdmin(admin.ModelAdmin):
    form = AgreementForm
    list_display = ["app", "basis", "percent", "starts_on", "ends_on", "created_at"]
    list_filter = ["basis", "app__partner"]
    search_fields = ["app__name", "app__slug", "app__partner__display_name"]
    list_select_related = ["app"]

    def get_readonly_fields(self, request, obj=None):
        # Once made, an agreement only ends: what it earned was computed with its terms.
        if obj is not None:
            return ["app", "basis", "percent", "starts_on", "note", "created_by", "created_at"]
        return ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        actor = Actor.from_request(request)
        if change:
            if "ends_on" in form.changed_data:
                agreement_end(actor=actor, agreement=obj, ends_on=obj.ends_on)
            return
        made = agreement_create(
            actor=actor,
            app=obj.app,
            basis=obj.basis,
            percent=form.cleaned_data.get("percent"),
            starts_on=obj.starts_on,
            ends_on=obj.ends_on,
            note=obj.note,
        )
        # The admin goes on with `obj` (its change message, its redirect): it is now that row.
        obj.pk, obj.percent, obj._state.adding = made.pk, made.percent, False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # entries point at it; end it instead


@admin.register(RevenueShareEntry)
class RevenueShareEntryAdmin(ReadOnlyAdmin):
    """What partners earned, line by line, each traced to an invoice line (and credit note)."""

    list_display = [
        "recognized_at",
        "partner",
        "app",
        "kind",
        "organization",
        "invoice",
        "credit_note",
        "base_amount",
        "percent",
        "amount",
        "currency",
        "statement",
    ]
    list_filter = ["kind", "partner", "app", "currency", ("statement", admin.EmptyFieldListFilter)]
    search_fields = [
        "invoice__number",
        "credit_note__number",
        "statement__number",
        "app__name",
        "partner__display_name",
    ]
    list_select_related = ["partner", "app", "organization", "invoice", "credit_note", "statement"]
    date_hierarchy = "recognized_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in RevenueShareEntry._meta.fields]
