"""The operator's side of partner statements and payouts: statements are read-only (their
lines inline, the same HTML and CSV the partner downloads); payouts are sent through Stripe
or recorded as paid by bank, and months are closed, always through the services."""

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing.admin import ReadOnlyAdmin
from common.errors import TollgateError
from marketplace.models import PartnerStatement, Payout, RevenueShareEntry
from marketplace.payouts import payout_create, payout_is_transfer, payout_mark_paid, payout_send
from marketplace.statement_views import statement_csv_response, statement_document_response
from marketplace.statements import statements_close
from portal.audit import Actor


class EntryInline(admin.TabularInline):
    model = RevenueShareEntry
    fk_name = "statement"
    extra = 0
    can_delete = False
    fields = [
        "recognized_at",
        "kind",
        "app",
        "invoice",
        "invoice_line",
        "credit_note",
        "base_amount",
        "percent",
        "amount",
    ]
    readonly_fields = fields
    ordering = ["recognized_at", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CloseMonthForm(forms.Form):
    month = forms.DateField(
        help_text="Any day of the month to close (YYYY-MM-DD); it must have ended.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )


@admin.register(PartnerStatement)
class PartnerStatementAdmin(ReadOnlyAdmin):
    change_list_template = "marketplace/statements/admin_change_list.html"
    list_display = [
        "number",
        "partner",
        "month",
        "currency",
        "earnings",
        "reversals",
        "closing_balance",
        "payable",
        "payout_status",
    ]
    list_filter = ["month", "currency"]
    search_fields = ["number", "partner__display_name", "partner__organization__slug"]
    list_select_related = ["partner", "payout"]
    readonly_fields = [
        "number",
        "partner",
        "month",
        "currency",
        "opening_balance",
        "earnings",
        "reversals",
        "closing_balance",
        "payable",
        "created_at",
        "documents",
    ]
    fields = readonly_fields
    inlines = [EntryInline]
    actions = ["create_payouts"]

    @admin.display(description="Payout")
    def payout_status(self, obj: PartnerStatement) -> str:
        payout = getattr(obj, "payout", None)
        return payout.status if payout else "—"

    @admin.display(description="Documents")
    def documents(self, obj: PartnerStatement):
        return format_html(
            '<a href="{}">HTML</a> · <a href="{}">CSV</a>',
            reverse("admin:marketplace_partnerstatement_document", args=[obj.pk]),
            reverse("admin:marketplace_partnerstatement_csv", args=[obj.pk]),
        )

    @admin.action(description="Create their payouts (payable balances only)")
    def create_payouts(self, request, queryset):
        made = 0
        for statement in queryset:
            made += (
                payout_create(actor=Actor.from_request(request), statement=statement) is not None
            )
        self.message_user(request, f"{made} payout(s) exist for the selected statements.")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "close/",
                wrap(self.close_month_view),
                name="marketplace_partnerstatement_close",
            ),
            path(
                "<uuid:statement_id>/document/",
                wrap(self.document_view),
                name="marketplace_partnerstatement_document",
            ),
            path(
                "<uuid:statement_id>/csv/",
                wrap(self.csv_view),
                name="marketplace_partnerstatement_csv",
            ),
            *super().get_urls(),
        ]

    def _statement(self, request: HttpRequest, statement_id) -> PartnerStatement:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(
            PartnerStatement.objects.select_related("partner"), pk=statement_id
        )

    def document_view(self, request: HttpRequest, statement_id) -> HttpResponse:
        statement = self._statement(request, statement_id)
        back_url = reverse("admin:marketplace_partnerstatement_change", args=[statement.pk])
        return statement_document_response(statement, back_url=back_url)

    def csv_view(self, request: HttpRequest, statement_id):
        return statement_csv_response(self._statement(request, statement_id))

    def close_month_view(self, request: HttpRequest) -> HttpResponse:
        """Closes a month now (the beat task does it on the 1st): the service is idempotent,
        so closing a month again makes nothing new."""
        # Closing makes statements: the permission to add them, though never by hand.
        if not request.user.has_perm("marketplace.add_partnerstatement"):
            raise PermissionDenied
        form = CloseMonthForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            picked: date = form.cleaned_data["month"]
            try:
                made = statements_close(
                    month=picked.replace(day=1), actor=Actor.from_request(request)
                )
            except TollgateError as error:
                self.message_user(request, error.detail, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{picked:%B %Y}: {len(made)} statement(s). Create and send their payouts "
                    "from the list.",
                    messages.SUCCESS,
                )
                changelist = reverse("admin:marketplace_partnerstatement_changelist")
                return HttpResponseRedirect(f"{changelist}?month={picked.replace(day=1)}")
        return TemplateResponse(
            request,
            "marketplace/statements/admin_close.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Close partner statements for a month",
                "form": form,
                "today": timezone.now().date(),
            },
        )


class PayoutActionForm(admin.helpers.ActionForm):
    reference = forms.CharField(
        required=False, max_length=200, help_text="For “Mark paid”: the bank transfer's reference."
    )


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = [
        "statement",
        "partner",
        "amount",
        "currency",
        "method",
        "status",
        "paid_at",
        "stripe_transfer_id",
        "reference",
    ]
    list_filter = ["status", "method", "currency"]
    search_fields = [
        "statement__number",
        "partner__display_name",
        "stripe_transfer_id",
        "reference",
    ]
    list_select_related = ["statement", "partner"]
    readonly_fields = [
        "statement",
        "partner",
        "amount",
        "currency",
        "method",
        "destination",
        "status",
        "stripe_transfer_id",
        "reference",
        "failure_message",
        "created_at",
        "paid_at",
        "recorded_by",
    ]
    fields = readonly_fields
    action_form = PayoutActionForm
    actions = ["send", "mark_paid"]

    @admin.action(description="Send (Stripe Connect transfer)")
    def send(self, request, queryset):
        for payout in queryset.select_related("statement", "partner"):
            try:
                sent = payout_send(actor=Actor.from_request(request), payout=payout)
            except TollgateError as error:
                self.message_user(request, f"{payout.statement}: {error.detail}", messages.ERROR)
                continue
            if sent.status == Payout.Status.PAID:
                self.message_user(request, f"{payout.statement}: paid ({sent.stripe_transfer_id}).")
            elif sent.status == Payout.Status.FAILED:
                self.message_user(
                    request, f"{payout.statement}: failed: {sent.failure_message}", messages.ERROR
                )
            elif not payout_is_transfer(sent):
                self.message_user(
                    request,
                    f"{payout.statement}: not a Stripe transfer (Stripe not configured or paid "
                    "by bank): pay it yourself, then “Mark paid” with the reference.",
                    messages.WARNING,
                )

    @admin.action(description="Mark paid (with the reference given)")
    def mark_paid(self, request, queryset):
        reference = request.POST.get("reference", "")
        for payout in queryset.select_related("statement", "partner"):
            try:
                payout_mark_paid(
                    actor=Actor.from_request(request), payout=payout, reference=reference
                )
            except TollgateError as error:
                self.message_user(request, f"{payout.statement}: {error.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{payout.statement}: recorded as paid.")
