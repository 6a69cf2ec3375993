"""Invoices as PDF, drawn with ReportLab (pure Python: nothing to install beside the wheel).

The PDF says what the HTML invoice says, from the same rows: header, customer, lines, totals.
"""

from io import BytesIO

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.models import Invoice
from billing.pricing.money import format_money
from billing.selectors import format_decimal


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def invoice_pdf(invoice: Invoice, *, seller: str, status: str) -> bytes:
    styles = getSampleStyleSheet()
    currency = invoice.currency
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Invoice {invoice.number or 'upcoming'}",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
    )
    customer = invoice.customer or {"name": invoice.organization.name}
    story = [
        Paragraph(
            f"{_escape(seller)} — Invoice {_escape(invoice.number or '(upcoming)')}",
            styles["Title"],
        ),
        Paragraph(
            f"Status: {status}. Period {invoice.period_start:%Y-%m-%d %H:%M} to "
            f"{invoice.period_end:%Y-%m-%d %H:%M} UTC.",
            styles["Normal"],
        ),
    ]
    if invoice.issued_at:
        story.append(
            Paragraph(
                f"Issued {invoice.issued_at:%Y-%m-%d}; due {invoice.due_at:%Y-%m-%d}.",
                styles["Normal"],
            )
        )
    story.append(Spacer(1, 6 * mm))
    billed_to = [f"<b>{_escape(customer.get('name', ''))}</b>"]
    billed_to += [_escape(part) for part in customer.get("address", [])]
    if customer.get("tax_id"):
        billed_to.append(f"Tax id: {_escape(customer['tax_id'])}")
    story.append(Paragraph("<br/>".join(billed_to), styles["Normal"]))
    story.append(Spacer(1, 6 * mm))
    rows = [["Description", "Quantity", "Amount"]]
    for line in invoice.lines.all():
        description = Paragraph(_escape(line.description), styles["BodyText"])
        quantity = "" if line.quantity is None else format_decimal(line.quantity)
        rows.append([description, quantity, format_money(line.amount, currency)])
    totals = [
        ("Subtotal", invoice.subtotal),
        ("Discount", -invoice.discount),
        ("Tax", invoice.tax),
        ("Credit applied", -invoice.credits),
        (f"Total ({currency})", invoice.total),
        ("Amount due", invoice.amount_due),
    ]
    for label, amount in totals:
        rows.append(["", label, format_money(amount, currency)])
    table = Table(rows, colWidths=[105 * mm, 35 * mm, 30 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEABOVE", (1, -len(totals)), (-1, -len(totals)), 0.5, colors.grey),
            ]
        )
    )
    story.append(table)
    if invoice.tax_rate and invoice.tax_rate.get("inclusive"):
        story.append(Spacer(1, 4 * mm))
        story.append(
            Paragraph(
                f"Prices include {_escape(invoice.tax_rate['name'])} "
                f"{invoice.tax_rate['percent']}%: {format_money(invoice.tax, currency)}.",
                styles["Normal"],
            )
        )
    document.build(story)
    return buffer.getvalue()
