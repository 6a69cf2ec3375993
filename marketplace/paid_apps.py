"""Paid apps: an app's price billed on the installing org's own invoice (MKT-4).

A paid app is sold as a hidden billing add-on (`App.addon`, code `app-<slug>`), made or
updated when the operator lists the app, so the price the customer pays is always one the
operator reviewed. Installing a paid app attaches that add-on to the org's open
subscription; uninstalling removes it. A period bills the add-ons attached when it ends
(billing.period_close.attached_addons): an app installed during a period is billed for the
whole period, one uninstalled before its end is not billed for it.
"""

import logging
from decimal import Decimal

from django.db import transaction

from billing.models import AddOn, SubscriptionAddOn
from billing.subscriptions import (
    subscription_add_addon,
    subscription_current,
    subscription_remove_addon,
)
from common.errors import Conflict, TollgateError
from marketplace.models import App, Install
from portal.audit import Actor, audit_record

ADDON_CODE_LENGTH = 64  # AddOn.code's max_length
logger = logging.getLogger(__name__)


def addon_code(app: App) -> str:
    """`app-<slug>`, cut to fit; made unique with the app's id if the operator's own
    catalog (or a cut longer slug) has taken it."""
    code = f"app-{app.slug}"[:ADDON_CODE_LENGTH]
    if AddOn.objects.filter(code=code).exists():
        code = f"app-{app.slug[:27]}-{app.id.hex}"  # 64 characters, unique with the app's id
    return code


def is_paid(app: App) -> bool:
    """Free apps have no price, or a price of zero: nothing is added to the bill."""
    return app.price is not None and app.price > 0


def app_price_sync(*, actor: Actor, app: App) -> AddOn | None:
    """The app's listed price as its hidden add-on (created on first listing, then updated).

    A free app keeps an add-on it had (priced 0, so a reinstated price has the same code and
    past invoice lines keep pointing at it) but nothing attaches it while it is free. Orgs
    that have the app installed keep their add-on item: the new price applies from the next
    period they are billed for."""
    if app.addon_id is None and not is_paid(app):
        return None
    price = app.price if is_paid(app) else Decimal(0)
    name = f"{app.name} (marketplace app)"[:200]
    with transaction.atomic():
        locked = (
            App.objects.select_for_update(of=("self",))
            .select_related("addon", "partner__organization")
            .get(pk=app.pk)
        )
        addon = locked.addon
        if addon is None:
            addon = AddOn.objects.create(
                code=addon_code(locked),
                name=name,
                description=f"The price of the marketplace app {locked.name}.",
                price=price,
                currency=locked.currency,
                public=False,
            )
            locked.addon = addon
            locked.save(update_fields=["addon"])
            changes = {"addon": addon.code, "price": str(price), "currency": addon.currency}
        else:
            changes = {
                field: [str(getattr(addon, field)), str(value)]
                for field, value in (("name", name), ("price", price), ("currency", app.currency))
                if getattr(addon, field) != value
            }
            if not changes:
                app.addon = addon
                return addon
            addon.name, addon.price, addon.currency = name, price, locked.currency
            addon.save(update_fields=["name", "price", "currency"])
        audit_record(
            actor=actor,
            action="app.price_synced",
            organization=locked.partner.organization,
            target=locked,
            changes=changes,
        )
    app.addon = addon
    return addon


def app_charge_attach(*, actor: Actor, install: Install) -> SubscriptionAddOn | None:
    """A paid app's add-on on the installing org's open subscription (None for a free app).

    Called inside the install's transaction: a refusal (no subscription, another currency)
    rolls the install back."""
    app = install.app
    if not is_paid(app) or app.addon_id is None:
        # Not listed at a price yet (the add-on is made at listing): nothing is billed.
        return None
    subscription = subscription_current(organization=install.organization)
    if subscription is None:
        raise Conflict(
            f"{app.name} costs {app.price.normalize():f} {app.currency} per billing period: "
            "subscribe to a plan before installing it.",
            code="subscription_required",
        )
    # Raises InvalidInput `currency_mismatch` when the plan is billed in another currency.
    item = subscription_add_addon(actor=actor, subscription=subscription, addon=app.addon)
    install.subscription_addon = item
    install.save(update_fields=["subscription_addon"])
    return item


def app_charge_renew(*, actor: Actor, install: Install) -> SubscriptionAddOn | None:
    """Consent given again to an installed app: if it is paid now and its add-on is not on
    the org's open subscription (the app was free when installed, or the subscription is a
    new one), it is attached, since the consent page showed the price. Otherwise nothing."""
    item = install.subscription_addon
    subscription = subscription_current(organization=install.organization)
    if (
        item is not None
        and subscription is not None
        and item.subscription_id == subscription.pk
        and SubscriptionAddOn.objects.filter(pk=item.pk, removed_at__isnull=True).exists()
    ):
        return item
    return app_charge_attach(actor=actor, install=install)


def app_charge_detach(*, actor: Actor, install: Install) -> None:
    """The app's add-on leaves the subscription when the app is uninstalled (no-op for a free
    app, or one whose add-on was already removed)."""
    item = install.subscription_addon
    if item is None:
        return
    if SubscriptionAddOn.objects.filter(pk=item.pk, removed_at__isnull=True).exists():
        subscription_remove_addon(actor=actor, item=item)


def paid_installs_reconcile(*, actor: Actor) -> int:
    """Installs that pay for their app, whose add-on is no longer on the org's open
    subscription (the org subscribed anew after a cancellation, or changed subscription):
    the add-on is attached to the current one, since the customer consented to the price.
    An org with no subscription (back on Free) keeps its installs unbilled until it
    subscribes again (docs/marketplace.md). Returns how many were attached (beat, hourly)."""
    paying = (
        Install.objects.filter(
            uninstalled_at__isnull=True,
            subscription_addon__isnull=False,
            app__addon__isnull=False,
            app__price__gt=0,
        )
        .select_related("app", "organization", "subscription_addon")
        .order_by("installed_at")
    )
    attached = 0
    for install in paying:
        current = subscription_current(organization=install.organization)
        item = install.subscription_addon
        if current is None or (item.subscription_id == current.pk and item.removed_at is None):
            continue
        try:
            with transaction.atomic():
                locked = Install.objects.select_for_update().get(pk=install.pk)
                if locked.uninstalled_at is not None:
                    continue
                locked.app = install.app
                if app_charge_renew(actor=actor, install=locked) is not None:
                    attached += 1
        except TollgateError as error:  # another currency now: the operator decides
            logger.warning("install %s not billed: %s", install.pk, error.code)
    return attached
