"""Paid apps (MKT-4): the partner's price, reviewed with the listing, becomes a hidden add-on
billed on the installing org's own invoice for each period the app is installed at its end;
bad prices and currencies are refused."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.invoicing import billing_run
from billing.models import AddOn, Invoice, InvoiceLine, Subscription, SubscriptionAddOn
from billing.subscriptions import subscription_remove_addon
from common.errors import Conflict, InvalidInput
from marketplace.apps_services import (
    app_create,
    app_logo_set,
    app_review,
    app_submit,
    app_update,
)
from marketplace.models import App, Install
from marketplace.paid_apps import app_charge_attach, app_charge_detach, paid_installs_reconcile
from marketplace.tasks import reconcile_paid_installs
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.billing.test_invoicing import make_plan, subscribe
from tests.factories import OrganizationFactory, ProjectFactory
from tests.marketplace.test_apps import (  # noqa: F401 -- fixtures
    APP,
    app,
    image_bytes,
    owner_of,
    partner,
)
from webhooks.models import Event

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
D = Decimal


@pytest.fixture(autouse=True)
def _billing_settings(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650
    settings.INVOICE_GRACE_SECONDS = 3600


def period_start():
    """A period that began a few days ago: installs made now fall inside it."""
    return (timezone.now() - timedelta(days=5)).replace(minute=0, second=0, microsecond=0)


def list_app(made: App, **fields) -> App:
    if fields:
        made = app_update(actor=SYSTEM, app=made, **fields)
    if made.state != App.State.IN_REVIEW:  # an edited listed app is back in review already
        made = app_submit(actor=SYSTEM, app=made)
    return app_review(actor=SYSTEM, app=made, decision="listed")


@pytest.fixture
def paid_app(app):  # noqa: F811 -- the fixture of test_apps
    return list_app(app, price="20.00", currency="USD")


@pytest.fixture
def customer(db):
    return OrganizationFactory(slug="globex", name="Globex")


def install_app(installed: App, organization) -> Install:
    """An install as the OAuth flow makes it: the row, then the charge in its transaction."""
    install = Install.objects.create(
        app=installed,
        organization=organization,
        project=ProjectFactory(organization=organization),
        scopes=["read"],
    )
    app_charge_attach(actor=SYSTEM, install=install)
    return install


def close_period(subscription) -> Invoice:
    subscription.refresh_from_db()
    run = billing_run(as_of=subscription.current_period_end + timedelta(hours=2))
    [invoice] = [made for made in run.finalized if made.subscription_id == subscription.pk]
    return invoice


# --- The price ------------------------------------------------------------------------------
def test_a_price_and_currency_are_stored_cleaned(partner):  # noqa: F811
    made = app_create(actor=SYSTEM, partner=partner, **APP, price="19.9", currency=" eur ")
    assert (made.price, made.currency) == (D("19.90"), "EUR")
    free = app_create(actor=SYSTEM, partner=partner, **{**APP, "name": "Free one"}, price="")
    assert (free.price, free.currency) == (None, "USD")


@pytest.mark.parametrize(
    "price",
    ["-1", "19.999", "abc", "NaN", "Infinity", "1000000", 19.99, True, [], "1e-3"],
)
def test_a_bad_price_is_refused(partner, price):  # noqa: F811
    with pytest.raises(InvalidInput) as error:
        app_create(actor=SYSTEM, partner=partner, **APP, price=price)
    assert (error.value.code, error.value.field) == ("invalid_price", "price")
    assert not App.objects.exists()


@pytest.mark.parametrize("currency", ["US", "USDX", "XXX", "U$D", 840, None])
def test_a_bad_currency_is_refused(partner, currency):  # noqa: F811
    with pytest.raises(InvalidInput) as error:
        app_create(actor=SYSTEM, partner=partner, **APP, price="5", currency=currency)
    assert error.value.code == "invalid_currency"


def test_a_price_must_fit_its_currency(partner):  # noqa: F811
    with pytest.raises(InvalidInput) as error:
        app_create(actor=SYSTEM, partner=partner, **APP, price="150.50", currency="JPY")
    assert error.value.code == "invalid_price"
    assert (
        app_create(actor=SYSTEM, partner=partner, **APP, price="150", currency="JPY").price == 150
    )


def test_listing_a_paid_app_makes_its_hidden_add_on(paid_app):
    addon = AddOn.objects.get(pk=paid_app.addon_id)
    assert addon.code == f"app-{paid_app.slug}" and addon.public is False
    assert (addon.name, addon.price, addon.currency) == (
        "Doc Sync (marketplace app)",
        D("20.00"),
        "USD",
    )
    assert AuditLogEntry.objects.filter(action="app.price_synced").count() == 1


def test_listing_a_free_app_makes_no_add_on(app):  # noqa: F811
    listed = list_app(app)
    assert listed.addon_id is None and not AddOn.objects.exists()


def test_a_new_price_applies_only_once_the_operator_lists_it_again(paid_app):
    edited = app_update(actor=SYSTEM, app=paid_app, price="25.00")
    assert edited.state == App.State.IN_REVIEW
    assert AddOn.objects.get(pk=paid_app.addon_id).price == D("20.00")  # still the listed one
    app_review(actor=SYSTEM, app=edited, decision="listed")
    assert AddOn.objects.get(pk=paid_app.addon_id).price == D("25.00")
    assert AddOn.objects.count() == 1


def test_an_app_made_free_keeps_its_add_on_at_zero_and_charges_nothing(paid_app, customer, meters):
    subscribe(customer, make_plan(), period_start())
    list_app(paid_app, price="")
    assert AddOn.objects.get(pk=paid_app.addon_id).price == 0
    install = install_app(App.objects.get(pk=paid_app.pk), customer)
    assert install.subscription_addon is None


def test_a_free_app_priced_later_is_billed_once_the_customer_consents_again(
    app,  # noqa: F811
    customer,
    meters,
):
    """Installed free, an app's new price is not charged behind the customer's back: the
    consent page shows it, and consenting again attaches it."""
    from marketplace.installs import install_authorize

    subscription = subscribe(customer, make_plan(), period_start())
    owner = owner_of(customer)
    project = ProjectFactory(organization=customer)
    free = list_app(app)
    install, _ = install_authorize(
        actor=Actor(user=owner), app=free, project=project, asked=["read"]
    )
    assert install.subscription_addon is None
    priced = list_app(App.objects.get(pk=app.pk), price="9.00")
    assert not SubscriptionAddOn.objects.filter(subscription=subscription).exists()
    again, _ = install_authorize(
        actor=Actor(user=owner), app=priced, project=project, asked=["read"]
    )
    item = SubscriptionAddOn.objects.get(subscription=subscription, removed_at__isnull=True)
    assert item.addon_id == priced.addon_id and again.subscription_addon_id == item.pk
    install_authorize(actor=Actor(user=owner), app=priced, project=project, asked=["read"])
    assert SubscriptionAddOn.objects.filter(subscription=subscription).count() == 1


def test_the_currency_of_an_app_listed_at_a_price_is_fixed(paid_app):
    with pytest.raises(Conflict) as error:
        app_update(actor=SYSTEM, app=paid_app, currency="EUR")
    assert error.value.code == "currency_locked"


def test_the_partner_sets_the_price_in_its_app_form(client, partner):  # noqa: F811
    organization = partner.organization
    client.force_login(owner_of(organization))
    base = f"/o/{organization.slug}/partner/apps"
    form = {**APP, "redirect_uris": "\n".join(APP["redirect_uris"])}
    client.post(f"{base}/new", {**form, "price": "12.50", "currency": "eur"})
    made = App.objects.get()
    assert (made.price, made.currency) == (D("12.50"), "EUR")
    page = client.get(f"{base}/{made.id}/").content.decode()
    assert 'value="12.50"' in page and "12.50 EUR per billing period" in page
    response = client.post(f"{base}/{made.id}/", {**form, "price": "1.234", "currency": "EUR"})
    assert response.status_code == 200  # the form says what is wrong
    assert App.objects.get().price == D("12.50")


# --- Installing and uninstalling ----------------------------------------------------------------
def test_installing_a_paid_app_adds_its_price_to_the_subscription(paid_app, customer, meters):
    subscription = subscribe(customer, make_plan(), period_start())
    install = install_app(paid_app, customer)
    item = SubscriptionAddOn.objects.get(subscription=subscription)
    assert install.subscription_addon == item and item.addon_id == paid_app.addon_id
    install.refresh_from_db()
    assert install.subscription_addon_id == item.pk
    assert AuditLogEntry.objects.filter(action="subscription.addon_added").count() == 1


def test_a_free_app_adds_nothing(app, customer, meters):  # noqa: F811
    subscribe(customer, make_plan(), period_start())
    install = install_app(list_app(app), customer)
    assert install.subscription_addon is None
    assert not SubscriptionAddOn.objects.exists()


def test_a_paid_app_needs_a_subscription(paid_app, customer):
    with pytest.raises(Conflict) as error:
        install_app(paid_app, customer)
    assert error.value.code == "subscription_required"


def test_a_paid_app_in_another_currency_is_refused(app, customer, meters):  # noqa: F811
    subscribe(customer, make_plan(), period_start())  # billed in USD
    euro_app = list_app(app, price="9.00", currency="EUR")
    with pytest.raises(InvalidInput) as error:
        install_app(euro_app, customer)
    assert error.value.code == "currency_mismatch"
    assert not SubscriptionAddOn.objects.exists()


def test_uninstalling_removes_the_add_on_and_says_so(paid_app, customer, meters):
    subscribe(customer, make_plan(), period_start())
    install = install_app(paid_app, customer)

    app_charge_detach(actor=SYSTEM, install=install)

    item = SubscriptionAddOn.objects.get()
    assert item.removed_at is not None
    assert AuditLogEntry.objects.filter(action="subscription.addon_removed").count() == 1
    event = Event.objects.filter(type="subscription.updated").latest("created_at")
    assert event.payload["data"]["change"] == "addon_removed"
    assert event.payload["data"]["addon"] == {"code": f"app-{paid_app.slug}", "quantity": 1}
    app_charge_detach(actor=SYSTEM, install=install)  # twice: nothing more
    assert AuditLogEntry.objects.filter(action="subscription.addon_removed").count() == 1
    with pytest.raises(Conflict):
        subscription_remove_addon(actor=SYSTEM, item=item)


# --- On the invoice -------------------------------------------------------------------------
def test_the_invoice_bills_the_app_on_a_line_that_names_its_add_on(paid_app, customer, meters):
    subscription = subscribe(customer, make_plan(), period_start())
    install_app(paid_app, customer)

    invoice = close_period(subscription)

    line = invoice.lines.get(kind=InvoiceLine.Kind.ADDON)
    assert (line.addon_id, line.amount, line.description) == (
        paid_app.addon_id,
        D("20.00"),
        "Doc Sync (marketplace app)",
    )
    assert invoice.total == D("30.00")  # the plan's 10.00 base fee and the app
    assert invoice.lines.get(kind=InvoiceLine.Kind.BASE_FEE).addon_id is None


def test_an_app_uninstalled_before_the_period_ends_is_not_billed_for_it(paid_app, customer, meters):
    subscription = subscribe(customer, make_plan(), period_start())
    app_charge_detach(actor=SYSTEM, install=install_app(paid_app, customer))
    invoice = close_period(subscription)
    assert not invoice.lines.filter(kind=InvoiceLine.Kind.ADDON).exists()
    assert invoice.total == D("10.00")


def test_an_app_installed_after_the_period_ended_waits_for_the_next_invoice(
    paid_app, customer, meters
):
    """Even when the close runs later: the period bills what was attached at its end."""
    subscription = subscribe(customer, make_plan(), period_start() - timedelta(days=40))
    install_app(paid_app, customer)  # now: in the second period
    run = billing_run(as_of=timezone.now())
    [first] = [invoice for invoice in run.closed if invoice.period_end < timezone.now()]
    assert not first.lines.filter(kind=InvoiceLine.Kind.ADDON).exists()
    invoice = close_period(subscription)
    assert invoice.lines.filter(kind=InvoiceLine.Kind.ADDON, addon=paid_app.addon).exists()


def test_another_org_never_pays_for_an_app_it_did_not_install(paid_app, customer, meters):
    bystander = OrganizationFactory()
    plan = make_plan()
    subscribe(customer, plan, period_start())
    other = subscribe(bystander, plan, period_start())
    install_app(paid_app, customer)
    invoice = close_period(other)
    assert invoice.organization == bystander
    assert not invoice.lines.filter(kind=InvoiceLine.Kind.ADDON).exists()


def test_no_one_adds_or_prices_an_apps_add_on_without_installing_it(paid_app, customer, meters):
    """The add-on is hidden and belongs to the app: the subscription API and the calculator
    refuse its code for customers and operators alike; only an install attaches it."""
    from tests.conftest import bearer_client
    from tests.factories import ApiTokenFactory

    plan = make_plan()
    subscription = subscribe(customer, plan, period_start())
    code = paid_app.addon.code
    customer_api = bearer_client(ApiTokenFactory(organization=customer))
    operator_api = bearer_client(ApiTokenFactory(kind="operator", organization=None))
    added = customer_api.post(
        "/api/v1/subscriptions/current/addons", {"addon": code}, format="json"
    )
    assert added.status_code == 400 and added.json()["code"] == "unknown_addon"
    by_operator = operator_api.post(
        "/api/v1/subscriptions/current/addons",
        {"addon": code, "customer": customer.slug},
        format="json",
    )
    assert by_operator.status_code == 400 and by_operator.json()["code"] == "unknown_addon"
    quote = customer_api.post(
        "/api/v1/pricing/quote", {"plan": plan.code, "addons": [code]}, format="json"
    )
    assert quote.status_code == 400 and quote.json()["code"] == "unknown_addon"
    assert not SubscriptionAddOn.objects.filter(subscription=subscription).exists()


def test_a_new_subscription_gets_the_add_ons_of_the_paid_apps_still_installed(
    paid_app,
    app,  # noqa: F811
    customer,
    meters,
):
    first = subscribe(customer, make_plan(), period_start())
    install = install_app(paid_app, customer)
    # Installed while free, priced later: never consented to the price, never attached.
    other = app_create(actor=SYSTEM, partner=paid_app.partner, **{**APP, "name": "Later Paid"})
    app_logo_set(actor=SYSTEM, app=other, data=image_bytes())
    free_install = install_app(list_app(other), customer)
    list_app(App.objects.get(pk=other.pk), price="5.00")

    Subscription.objects.filter(pk=first.pk).update(status=Subscription.Status.CANCELED)
    assert paid_installs_reconcile(actor=SYSTEM) == 0  # back on Free: nothing to attach to
    second = subscribe(customer, make_plan(code="metered-2"), period_start())

    assert reconcile_paid_installs.run() == 1
    item = SubscriptionAddOn.objects.get(subscription=second)
    install.refresh_from_db()
    assert item.addon_id == paid_app.addon_id and install.subscription_addon_id == item.pk
    free_install.refresh_from_db()
    assert free_install.subscription_addon is None
    assert paid_installs_reconcile(actor=SYSTEM) == 0
