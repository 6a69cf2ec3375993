"""Reads of invoices, scoped to the caller, and the evidence behind each usage line.

Customers see open, paid, void and uncollectible invoices; a draft (a closed period in its
grace hour) shows to them as "upcoming". Operators see everything.
"""

from collections.abc import Iterator
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.urls import reverse

from billing.models import Invoice, InvoiceLine, Meter
from billing.pricing.money import format_exact, format_money
from billing.selectors import UsageFilter, usage_export_rows
from common.lookups import get_or_not_found

CUSTOMER_STATUS = {Invoice.Status.DRAFT: "upcoming"}
EVIDENCE_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.ADJUSTMENT)


def invoice_list(*, organization=None, status: str | None = None) -> QuerySet[Invoice]:
    invoices = Invoice.objects.select_related("organization")
    if organization is not None:
        invoices = invoices.filter(organization=organization)
    if status:
        status = "draft" if status == "upcoming" else status
        invoices = invoices.filter(status=status)
    return invoices.order_by("-period_start", "-created_at")


def invoice_get(*, invoice_id, organization=None) -> Invoice:
    """404 (not 403) for another org's invoice: its existence is not disclosed."""
    return get_or_not_found(invoice_list(organization=organization), invoice_id, "invoice")


def line_get(*, invoice: Invoice, line_id) -> InvoiceLine:
    return get_or_not_found(invoice.lines.all(), line_id, "invoice line")


def shown_status(invoice: Invoice, *, operator: bool) -> str:
    return invoice.status if operator else CUSTOMER_STATUS.get(invoice.status, invoice.status)


def evidence_rows(line: InvoiceLine) -> Iterator[tuple]:
    """The ledger rows a usage line billed: the org's live events of its meter in its
    window, received by the time the invoice read the ledger (for an adjustment: received
    after what was billed before, up to when the adjustment read it)."""
    if line.kind not in EVIDENCE_KINDS or not line.meter or line.period_start is None:
        return iter(())
    meter = Meter.objects.get(code=line.meter)
    usage = UsageFilter(
        organization_id=line.invoice.organization_id,
        meter=meter,
        start=line.period_start,
        end=line.period_end,
    )
    return usage_export_rows(
        usage, received_after=line.received_after, received_until=line.received_until
    )


def invoice_json(invoice: Invoice, *, operator: bool, build_url) -> dict:
    """The API shape (amounts as decimal strings with the currency's digits)."""
    currency = invoice.currency
    lines = []
    for line in invoice.lines.all():
        body = {
            "id": str(line.id),
            "kind": line.kind,
            "description": line.description,
            "meter": line.meter or None,
            "quantity": None if line.quantity is None else format_exact(line.quantity),
            "amount": format_money(line.amount, currency),
            "tiers": line.tiers,
            "evidence_url": None,
            "usage_query_url": None,
            "period": None,
            "breakdown": line.breakdown,
            "explanation": line.explanation or None,
            "adjusts": None
            if line.adjusts_id is None
            else {"invoice": str(line.adjusts.invoice_id), "line": str(line.adjusts_id)},
        }
        if line.period_start:
            body["period"] = {"start": line.period_start, "end": line.period_end}
        if line.kind in EVIDENCE_KINDS and line.meter:
            body["evidence_url"] = build_url(
                reverse("api:invoice-line-evidence", args=[invoice.pk, line.pk])
            )
            query = {
                "meter": line.meter,
                "from": line.period_start.isoformat(),
                "to": line.period_end.isoformat(),
            }
            if operator:
                query["customer"] = invoice.organization.slug
            body["usage_query_url"] = build_url(reverse("api:usage") + "?" + urlencode(query))
        lines.append(body)
    return {
        "id": str(invoice.id),
        "number": invoice.number,
        "status": shown_status(invoice, operator=operator),
        "customer": {
            "id": str(invoice.organization_id),
            "slug": invoice.organization.slug,
            "name": invoice.organization.name,
            **(invoice.customer or {}),  # frozen when finalized
        },
        "currency": currency,
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "plan": invoice.plan,
        "lines": lines,
        "subtotal": format_money(invoice.subtotal, currency),
        "discount": format_money(invoice.discount, currency),
        "credits": format_money(invoice.credits, currency),
        "tax": format_money(invoice.tax, currency),
        "tax_rate": invoice.tax_rate,
        "total": format_money(invoice.total, currency),
        "amount_paid": format_money(invoice.amount_paid, currency),
        "amount_credited": format_money(invoice.amount_credited, currency),
        "amount_due": format_money(invoice.amount_due, currency),
        "credit_notes": [
            {
                "number": note.number,
                "amount": format_money(note.amount, currency),
                "reason": note.reason,
                "created_at": note.created_at,
            }
            for note in invoice.credit_notes.all()
        ],
        "issued_at": invoice.issued_at,
        "due_at": invoice.due_at,
        "paid_at": invoice.paid_at,
        "finalizes_at": invoice.finalize_after if invoice.status == "draft" else None,
    }
