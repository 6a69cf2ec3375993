"""A customer finds its invoice in the portal, reads it, prints it and downloads the PDF,
in headless Chromium, on the demo data `make run` seeds."""

from django.core.management import call_command

from billing.models import Invoice
from billing.templatetags.billing_tags import format_amount

PASSWORD = "demo-password-123"


def test_customer_reads_prints_and_downloads_an_invoice(page, meters, artifacts):
    call_command("seed_demo", "--password", PASSWORD)
    invoice = Invoice.objects.get(organization__slug="acme", status="open")

    page.goto("/accounts/login/")
    page.fill("input[name=login]", "owner@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("link", name="Invoices").click()
    row = page.locator("#invoice-table tbody tr", has_text=invoice.number)
    assert format_amount(invoice.total, invoice.currency) in row.inner_text()
    row.get_by_role("link", name=invoice.number).click()

    assert page.locator("#invoice-status").inner_text() == "open"
    assert page.locator("#invoice-total").inner_text() == format_amount(
        invoice.total, invoice.currency
    )
    assert "Acme Corporation" in page.locator("#invoice-customer").inner_text()
    # The period as the customer's clock shows it (the demo bills in Los Angeles time).
    assert "(America/Los_Angeles)" in page.locator("#invoice-period").inner_text()
    usage = page.locator(".invoice-line-usage").first
    assert "Evidence" in usage.inner_text()
    page.screenshot(path=str(artifacts / "invoice.png"), full_page=True)

    # Printed, the page is the invoice alone: no navigation, no buttons.
    page.emulate_media(media="print")
    assert not page.locator(".sidenav").is_visible()
    assert not page.locator("[data-print]").is_visible()
    assert page.locator("#invoice-lines").is_visible()
    page.emulate_media(media="screen")

    with page.expect_download() as download_info:
        page.click("#invoice-pdf")
    download = download_info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
