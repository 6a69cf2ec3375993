"""Paid apps: an app's price billed on the installing org's own invoice (MKT-4)."""

from billing.models import SubscriptionAddOn
from marketplace.models import Install
from portal.audit import Actor


def app_charge_attach(*, actor: Actor, install: Install) -> SubscriptionAddOn | None:
    """STUB (helper fills in): a paid app's add-on on the org's subscription; None if free."""
    return None


def app_charge_detach(*, actor: Actor, install: Install) -> None:
    """STUB (helper fills in): the add-on leaves the subscription at uninstall."""
    return None
