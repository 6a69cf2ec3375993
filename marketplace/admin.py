"""The operator's side of the partner program: tiers, and deciding on applications."""

from django import forms
from django.contrib import admin, messages
from django.db import models

from common.errors import TollgateError
from marketplace import (  # noqa: F401 -- each registers its models
    revenue_admin,
    reviews_admin,
    statement_admin,
)
from marketplace.apps_services import app_review
from marketplace.models import App, Partner, PartnerTier
from marketplace.services import partner_decide
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


@admin.register(PartnerTier)
class PartnerTierAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "revenue_share_percent",
        "rank",
        "featured",
        "case_study",
        "joint_announcements",
    ]
    prepopulated_fields = {"code": ["name"]}


class DecisionForm(admin.helpers.ActionForm):
    tier = forms.ModelChoiceField(
        PartnerTier.objects.all(), required=False, help_text="For approvals (default: lowest)."
    )
    note = forms.CharField(required=False, max_length=2000)


def _decide(status: str, label: str):
    def action(modeladmin, request, queryset):
        tier_id = request.POST.get("tier") or None
        tier = PartnerTier.objects.filter(pk=tier_id).first() if tier_id else None
        note = request.POST.get("note", "")
        done = 0
        for partner in queryset:
            try:
                partner_decide(
                    actor=Actor.from_request(request),
                    partner=partner,
                    status=status,
                    tier=tier,
                    note=note,
                )
            except TollgateError as error:
                modeladmin.message_user(request, f"{partner}: {error.detail}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"{done} partner(s) {label}.", messages.SUCCESS)

    action.short_description = f"{label.capitalize()} (e-mails the partner)"
    action.__name__ = f"partner_{status}"
    return action


@admin.register(Partner)
class PartnerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["display_name", "organization", "status", "tier", "applied_at", "featured"]
    list_filter = ["status", "tier", "featured"]
    search_fields = ["display_name", "organization__name", "organization__slug", "website"]
    list_select_related = ["organization", "tier"]
    action_form = DecisionForm
    actions = [
        _decide("approved", "approved"),
        _decide("rejected", "rejected"),
        _decide("suspended", "suspended"),
    ]
    # Status and tier change only through the decisions above (audited, e-mailed).
    readonly_fields = [
        "organization",
        "status",
        "tier",
        "applied_at",
        "decided_at",
        "decided_by",
        "payout_method",
        "payout_reference",
        "payout_email",
    ]
    fields = [
        "organization",
        "status",
        "tier",
        "display_name",
        "website",
        "description",
        "support_email",
        "support_url",
        "payout_method",
        "payout_reference",
        "payout_email",
        "featured",
        "case_study",
        "joint_announcements",
        "review_note",
        "applied_at",
        "decided_at",
        "decided_by",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # organizations apply from their partner page


class ReviewForm(admin.helpers.ActionForm):
    note = forms.CharField(required=False, max_length=2000, help_text="Sent to the partner.")


def _review(decision: str, label: str, certified: bool | None = None):
    def action(modeladmin, request, queryset):
        done = 0
        for app in queryset.select_related("partner__organization"):
            try:
                app_review(
                    actor=Actor.from_request(request),
                    app=app,
                    decision=decision,
                    note=request.POST.get("note", ""),
                    certified=certified,
                )
            except TollgateError as error:
                modeladmin.message_user(request, f"{app}: {error.detail}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"{done} app(s): {label}.", messages.SUCCESS)

    action.short_description = f"{label} (e-mails the partner)"
    action.__name__ = f"app_{decision}{'_certified' if certified else ''}"
    return action


@admin.register(App)
class AppAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "partner", "state", "certified", "submitted_at", "listed_at"]
    list_filter = ["state", "certified"]
    search_fields = ["name", "slug", "partner__display_name"]
    list_select_related = ["partner"]
    action_form = ReviewForm
    actions = [
        _review("listed", "List"),
        _review("listed", "List as certified", certified=True),
        _review("changes_requested", "Request changes"),
        _review("suspended", "Suspend"),
    ]
    # The listing is the partner's; the operator decides its state through the actions.
    readonly_fields = [field.name for field in App._meta.fields if field.name not in {"logo"}]
    exclude = ["logo"]

    def has_add_permission(self, request) -> bool:
        return False
