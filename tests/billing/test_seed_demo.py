"""`seed_demo` (what `make run` shows): a month of history with one closed, invoiced period,
and safe to run again."""

from datetime import timedelta

from django.core.management import call_command

from billing.models import Invoice, Subscription, UsageEvent


def test_seed_demo_leaves_an_invoice_and_a_running_period_and_reruns_cleanly(db, meters):
    call_command("seed_demo", "--password", "demo-password-123")
    invoices = Invoice.objects.filter(organization__slug="acme")
    assert invoices.count() == 1
    invoice = invoices.get()
    assert invoice.status == "open" and invoice.number.startswith("INV-")
    assert invoice.customer["name"] == "Acme Corporation"
    assert invoice.lines.filter(kind="usage", quantity__gt=0).exists()
    subscription = Subscription.objects.get(organization__slug="acme")
    assert subscription.current_period_start == invoice.period_end
    assert subscription.current_period_end - subscription.current_period_start > timedelta(days=27)
    events = UsageEvent.objects.count()
    call_command("seed_demo", "--password", "demo-password-123")
    assert Invoice.objects.filter(organization__slug="acme").count() == 1
    assert UsageEvent.objects.count() == events


def test_seed_demo_publishes_the_demo_api_for_the_docs_and_the_sandbox(db, meters):
    from keys.models import ApiVersion

    call_command("seed_demo", "--password", "demo-password-123")
    call_command("seed_demo", "--password", "demo-password-123")

    version = ApiVersion.objects.get(product__code="documents", version="v1")
    assert version.base_path == "/v1"
    assert version.endpoints.filter(method="GET", path_template="/documents").exists()
    assert version.endpoints.filter(group="bulk").exists()


def test_seed_demo_writes_a_changelog_entry_and_a_deprecation_once(db, meters):
    from devdocs.models import ChangelogEntry, Deprecation
    from keys.models import Endpoint

    call_command("seed_demo", "--password", "demo-password-123")
    call_command("seed_demo", "--password", "demo-password-123")

    assert ChangelogEntry.objects.filter(slug="documents-api-v1").count() == 1
    [deprecation] = Deprecation.objects.all()
    render = Endpoint.objects.get(pk=deprecation.endpoint_id)
    assert render.deprecated and render.sunset_at == deprecation.sunset_at
