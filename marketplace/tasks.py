"""Marketplace background work: accruing partners' revenue share, and closing each month into
statements and their payouts (beat schedule in config/settings.py, docs/marketplace.md).

Both are idempotent: the revenue share is one entry per invoice line and agreement, a month
has one statement per partner and currency, and a statement one payout; a re-run only sends
payouts still pending.
"""

import logging
from datetime import date

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(queue="billing", acks_late=True)
def accrue_revenue_share() -> int:
    """Partners' shares of newly paid invoices and of credit notes (beat, hourly); returns
    how many entries were made."""
    from marketplace.revenue import revenue_accrue

    return revenue_accrue()


@shared_task(queue="billing", acks_late=True)
def reconcile_paid_installs() -> int:
    """Paid apps' add-ons back on subscriptions that replaced the one they were on (beat,
    hourly); returns how many were attached."""
    from marketplace.paid_apps import paid_installs_reconcile
    from portal.audit import Actor

    return paid_installs_reconcile(actor=Actor.system("paid_installs_reconcile"))


@shared_task(queue="billing", acks_late=True)
def close_partner_statements(month: str | None = None) -> dict:
    """Closes the previous month (or `month`: "2026-10" or a day of it) into statements,
    then makes and sends each one's payout (beat, on the 1st). One payout's failure never
    stops the others: it is recorded on the payout for the operator to retry."""
    from django.utils import timezone

    from common.errors import TollgateError
    from marketplace.models import Payout
    from marketplace.payouts import payout_create, payout_send
    from marketplace.statements import STATEMENTS_ACTOR, statements_close

    if month:  # "2026-10" or any day of it ("2026-10-15"): the month is what is closed
        target = date.fromisoformat(month if len(month) > 7 else f"{month}-01").replace(day=1)
    else:
        today = timezone.now().date()
        target = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
    statements = statements_close(month=target)
    sent = 0
    for statement in statements:
        payout = payout_create(actor=STATEMENTS_ACTOR, statement=statement)
        if payout is None or payout.status != Payout.Status.PENDING:
            continue
        try:
            payout = payout_send(actor=STATEMENTS_ACTOR, payout=payout)
        except TollgateError as error:
            # A held partner (suspended) or a paid payout: nothing to send now.
            logger.info("payout %s not sent: %s", payout.pk, error.code)
            continue
        sent += payout.status == Payout.Status.PAID
    return {"month": target.isoformat(), "statements": len(statements), "paid": sent}
