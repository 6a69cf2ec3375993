"""Invoice pages of an organization: list (and CSV), a printable invoice, its PDF, and the
evidence CSV of each usage line. Members who manage billing see them."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from billing import invoice_selectors as selectors
from billing import profiles
from billing.invoice_pdf import invoice_pdf
from billing.models import Invoice
from billing.pricing.money import format_money
from billing.usage_csv import export_lines
from common.csv_export import stream_csv
from common.errors import NotFound, TollgateError
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.forms import add_service_error
from portal.roles import Permission

LIST_COLUMNS = [
    "number",
    "status",
    "period_start",
    "period_end",
    "currency",
    "subtotal",
    "discount",
    "tax",
    "credits",
    "total",
    "amount_due",
    "issued_at",
    "due_at",
    "paid_at",
]
FILTERS = ["upcoming", "open", "paid", "void", "uncollectible"]


def _invoice(request: HttpRequest, invoice_id) -> Invoice:
    return selectors.invoice_get(invoice_id=invoice_id, organization=request.organization)


@org_member_required(Permission.BILLING_MANAGE)
def invoice_list(request: HttpRequest) -> HttpResponse:
    wanted = request.GET.get("status")
    wanted = wanted if wanted in FILTERS else None
    invoices = selectors.invoice_list(organization=request.organization, status=wanted)
    if request.GET.get("format") == "csv":
        rows = (
            [
                invoice.number or "",
                selectors.shown_status(invoice, operator=False),
                invoice.period_start,
                invoice.period_end,
                invoice.currency,
                *(
                    format_money(value, invoice.currency)
                    for value in (
                        invoice.subtotal,
                        invoice.discount,
                        invoice.tax,
                        invoice.credits,
                        invoice.total,
                        invoice.amount_due,
                    )
                ),
                invoice.issued_at,
                invoice.due_at,
                invoice.paid_at,
            ]
            for invoice in invoices.iterator()
        )
        response = StreamingHttpResponse(stream_csv(rows, LIST_COLUMNS), content_type="text/csv")
        response["Content-Disposition"] = (
            f'attachment; filename="invoices-{request.organization.slug}.csv"'
        )
        return response
    return render(
        request,
        "billing/invoices.html",
        {
            "nav_section": "invoices",
            "invoices": invoices[:200],
            "filters": FILTERS,
            "status": wanted,
        },
    )


@org_member_required(Permission.BILLING_MANAGE)
def invoice_detail(request: HttpRequest, invoice_id) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    return render(
        request,
        "billing/invoice.html",
        {
            "nav_section": "invoices",
            "invoice": invoice,
            "status": selectors.shown_status(invoice, operator=False),
            "lines": invoice.lines.select_related("adjusts__invoice", "charge"),
            "customer": invoice.customer or {"name": invoice.organization.name},
            "seller": settings.TOLLGATE_SELLER_NAME,
            "zone": profiles.billing_zone(invoice.organization_id),
        },
    )


@org_member_required(Permission.BILLING_MANAGE)
def invoice_download(request: HttpRequest, invoice_id) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    pdf = invoice_pdf(
        invoice,
        seller=settings.TOLLGATE_SELLER_NAME,
        status=selectors.shown_status(invoice, operator=False),
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{invoice.number or "upcoming-invoice"}.pdf"'
    )
    return response


@org_member_required(Permission.BILLING_MANAGE)
def line_evidence(request: HttpRequest, invoice_id, line_id) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    line = selectors.line_get(invoice=invoice, line_id=line_id)
    if line.kind not in selectors.EVIDENCE_KINDS:
        raise NotFound("This line has no ledger evidence.", code="no_evidence")
    response = StreamingHttpResponse(
        export_lines(selectors.evidence_rows(line)), content_type="text/csv"
    )
    name = f"{invoice.number or 'upcoming'}-{line.meter}-{line.position}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class BillingDetailsForm(forms.Form):
    legal_name = forms.CharField(max_length=200, required=False, label="Legal name")
    billing_email = forms.EmailField(required=False, label="Billing e-mail")
    address_line1 = forms.CharField(max_length=200, required=False, label="Address")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address (line 2)")
    postal_code = forms.CharField(max_length=20, required=False)
    city = forms.CharField(max_length=100, required=False)
    region = forms.CharField(max_length=100, required=False, label="State or region code")
    country = forms.CharField(max_length=2, required=False, help_text="Two letters, e.g. DE, US")
    tax_id = forms.CharField(max_length=64, required=False, label="Tax id (VAT, GST, EIN…)")
    timezone = forms.CharField(
        max_length=64,
        initial="UTC",
        help_text="Your billing periods close at midnight in this time zone (e.g. Europe/Paris).",
    )


@org_member_required(Permission.BILLING_MANAGE)
def billing_details(request: HttpRequest) -> HttpResponse:
    """What invoices say about the customer, and the time zone periods close in."""
    profile = profiles.profile_get(request.organization)
    initial = {name: getattr(profile, name) for name in profiles.PROFILE_FIELDS}
    form = BillingDetailsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            profiles.profile_update(
                actor=Actor.from_request(request),
                organization=request.organization,
                **form.cleaned_data,
            )
        except TollgateError as error:
            if not add_service_error(form, error):
                messages.error(request, error.detail)
        else:
            messages.success(request, "Billing details saved. New invoices will show them.")
            return redirect("org_billing:details", slug=request.organization.slug)
    return render(request, "billing/details.html", {"nav_section": "invoices", "form": form})
