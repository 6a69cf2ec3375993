"""Prepaid credit: granting it, and rolling unused credit over into the next period.

A grant is money the organization may spend on its bills until the grant expires. A rolling
grant (`rolls_over`) does not simply lapse: at the end of the period in which it expires,
what is left of it, up to its `rollover_cap`, becomes a new grant that expires one period
later and points back at it (`rolled_over_from`). Whatever is above the cap expires with the
old grant. A rolled-over grant does not roll over again, so credit cannot live forever.

Invoices (a later issue) draw credit down; the bill preview shows what would be applied
(billing.subscriptions.credits_available).
"""

from datetime import datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.db import transaction

from billing.models import CreditGrant
from billing.pricing.money import ZERO, format_money, is_supported_currency, round_money
from billing.profiles import billing_zone
from billing.subscriptions import next_period_end, subscription_current
from common.errors import InvalidInput
from portal.audit import Actor, audit_record
from portal.models import Organization

MAX_AMOUNT = Decimal(10) ** 15


def _money(value, currency: str, field: str, *, allow_zero: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidInput('Give an amount such as "100.00".', field=field)
    try:
        amount = Decimal(value)
    except ArithmeticError:
        raise InvalidInput(f"'{value}' is not an amount.", field=field) from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput("Give a positive amount.", field=field)
    if amount >= MAX_AMOUNT:
        raise InvalidInput("The amount is too large.", field=field)
    if round_money(amount, currency) != amount:
        raise InvalidInput(f"{currency} amounts have at most its minor unit's digits.", field=field)
    return round_money(amount, currency)


def credit_grant_create(
    *,
    actor: Actor,
    organization: Organization,
    amount: Decimal,
    currency: str,
    expires_at: datetime | None = None,
    rolls_over: bool = False,
    rollover_cap: Decimal | None = None,
    reason: str = "",
) -> CreditGrant:
    """Grants prepaid credit; `rolls_over` needs an expiry (it rolls over when it expires)."""
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise InvalidInput(
            f"Unsupported currency '{currency}'.", field="currency", code="unsupported_currency"
        )
    amount = _money(amount, currency, "amount", allow_zero=False)
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone.", field="expires_at")
    if rolls_over and expires_at is None:
        raise InvalidInput("A grant that rolls over needs an expiry.", field="expires_at")
    if rollover_cap is not None:
        if not rolls_over:
            raise InvalidInput("A rollover cap needs rolls_over.", field="rollover_cap")
        rollover_cap = _money(rollover_cap, currency, "rollover_cap", allow_zero=True)
    with transaction.atomic():
        grant = CreditGrant.objects.create(
            organization=organization,
            currency=currency,
            amount=amount,
            remaining=amount,
            expires_at=expires_at,
            rolls_over=rolls_over,
            rollover_cap=rollover_cap,
            reason=str(reason)[:255],
        )
        audit_record(
            actor=actor,
            action="credit.granted",
            organization=organization,
            target=grant,
            changes={
                "amount": format_money(amount, currency),
                "currency": currency,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "rolls_over": rolls_over,
                "rollover_cap": None
                if rollover_cap is None
                else format_money(rollover_cap, currency),
                "reason": grant.reason,
            },
        )
    return grant


def _next_period_end(organization: Organization, period_end: datetime) -> datetime:
    """The end of the period that starts at `period_end`: the subscription's anniversary
    period when there is one (a period ending on Feb 28 of a subscription started on the
    31st is followed by one ending on Mar 31), else one month later."""
    subscription = subscription_current(organization=organization)
    if subscription is None:
        return period_end + relativedelta(months=1)
    phase = subscription.phases.select_related("plan_version__plan").last()
    plan = phase.plan_version.plan if phase else None
    return next_period_end(subscription, period_end, plan, billing_zone(organization.id))


def credits_roll_over(
    *, actor: Actor, organization: Organization, period_end: datetime
) -> list[CreditGrant]:
    """At the close of the period ending at `period_end`: each rolling grant that expires by
    then with credit left moves min(remaining, cap) into a new grant expiring one period
    later. Safe to run twice: a grant that already rolled over is skipped."""
    if period_end.tzinfo is None:
        raise InvalidInput("period_end needs a time zone.", field="period_end")
    created = []
    with transaction.atomic():
        already = CreditGrant.objects.filter(
            organization=organization, rolled_over_from__isnull=False
        ).values("rolled_over_from")
        due = (
            CreditGrant.objects.select_for_update()
            .filter(
                organization=organization,
                rolls_over=True,
                expires_at__lte=period_end,
                remaining__gt=0,
            )
            .exclude(pk__in=already)
            .order_by("pk")  # row locks in primary-key order
        )
        grants = list(due)
        if not grants:
            return created
        expires_at = _next_period_end(organization, period_end)
        for grant in grants:
            moved = grant.remaining
            if grant.rollover_cap is not None:
                moved = min(moved, grant.rollover_cap)
            moved = round_money(moved, grant.currency)
            forfeited = round_money(grant.remaining - moved, grant.currency)
            if moved <= ZERO:
                continue
            # The old grant keeps only what expired with it; the moved credit lives on in
            # the new grant, so the two never count the same money twice.
            grant.remaining = forfeited
            grant.save(update_fields=["remaining"])
            successor = CreditGrant.objects.create(
                organization=organization,
                currency=grant.currency,
                amount=moved,
                remaining=moved,
                granted_at=period_end,
                expires_at=expires_at,
                rolls_over=False,
                rolled_over_from=grant,
                reason=f"Rolled over from grant {grant.pk}",
            )
            audit_record(
                actor=actor,
                action="credit.rolled_over",
                organization=organization,
                target=grant,
                changes={
                    "moved": format_money(moved, grant.currency),
                    "forfeited": format_money(forfeited, grant.currency),
                    "to": str(successor.pk),
                    "period_end": period_end.isoformat(),
                },
            )
            audit_record(
                actor=actor,
                action="credit.granted",
                organization=organization,
                target=successor,
                changes={
                    "amount": format_money(moved, grant.currency),
                    "currency": grant.currency,
                    "expires_at": expires_at.isoformat(),
                    "rolled_over_from": str(grant.pk),
                },
            )
            created.append(successor)
    return created
