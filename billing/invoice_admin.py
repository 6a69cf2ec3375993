"""Admin for invoicing: invoices (read-only lines, state-change actions), credit notes, tax
rates and billing profiles. Imported by billing/admin.py."""

from django.contrib import admin, messages
from django.db.models import QuerySet

from billing import invoicing
from billing.models import (
    BillingProfile,
    CreditNote,
    DocumentSequence,
    Invoice,
    InvoiceLine,
    TaxRate,
)
from common.errors import TollgateError
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ["position", "kind", "description", "meter", "quantity", "amount", "explanation"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class CreditNoteInline(admin.TabularInline):
    model = CreditNote
    extra = 0
    can_delete = False
    fields = ["number", "amount", "reason", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _each(modeladmin, request, queryset: QuerySet, action, done: str) -> None:
    count = 0
    for invoice in queryset:
        try:
            action(invoice)
        except TollgateError as error:
            modeladmin.message_user(request, f"{invoice}: {error.detail}", messages.ERROR)
        else:
            count += 1
    if count:
        modeladmin.message_user(request, f"{count} invoice(s) {done}.", messages.SUCCESS)


@admin.action(description="Finalize selected drafts now")
def finalize_invoices(modeladmin, request, queryset):
    _each(
        modeladmin,
        request,
        queryset.filter(status=Invoice.Status.DRAFT),
        lambda invoice: invoicing.invoice_finalize(invoice_id=invoice.pk),
        "finalized",
    )


@admin.action(description="Void selected invoices")
def void_invoices(modeladmin, request, queryset):
    actor = Actor.from_request(request)
    _each(
        modeladmin,
        request,
        queryset,
        lambda invoice: invoicing.invoice_void(actor=actor, invoice=invoice),
        "voided",
    )


@admin.action(description="Mark selected invoices uncollectible")
def mark_uncollectible(modeladmin, request, queryset):
    actor = Actor.from_request(request)
    _each(
        modeladmin,
        request,
        queryset,
        lambda invoice: invoicing.invoice_mark_uncollectible(actor=actor, invoice=invoice),
        "marked uncollectible",
    )


@admin.action(description="Mark selected invoices paid (payment received outside Stripe)")
def mark_invoices_paid(modeladmin, request, queryset):
    """Records the whole amount due of each invoice as paid."""
    from billing.payments import invoice_mark_paid

    actor = Actor.from_request(request)
    _each(
        modeladmin,
        request,
        queryset,
        lambda invoice: invoice_mark_paid(actor=actor, invoice=invoice, reference="admin"),
        "marked paid",
    )


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Invoices change only through their actions (and credit notes), never by editing."""

    list_display = ["__str__", "organization", "status", "period_start", "total", "issued_at"]
    list_filter = ["status", "currency"]
    search_fields = ["number", "organization__name", "organization__slug"]
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline, CreditNoteInline]
    actions = [finalize_invoices, mark_invoices_paid, void_invoices, mark_uncollectible]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin):
    list_display = ["number", "invoice", "amount", "reason", "created_at"]
    search_fields = ["number", "invoice__number"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # issued from an invoice (API or the service), with a number

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TaxRate)
class TaxRateAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "country", "region", "percent", "inclusive", "active"]
    list_filter = ["country", "inclusive", "active"]


@admin.register(BillingProfile)
class BillingProfileAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["organization", "country", "region", "tax_id", "timezone", "collection"]
    search_fields = ["organization__name", "organization__slug", "tax_id", "legal_name"]
    readonly_fields = ["stripe_customer_id", "past_due_since"]


@admin.register(DocumentSequence)
class DocumentSequenceAdmin(admin.ModelAdmin):
    list_display = ["prefix", "last_number"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
