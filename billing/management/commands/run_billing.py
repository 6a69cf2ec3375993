"""`manage.py run_billing --as-of 2026-12-01T00:00:00Z`: the period close for a given instant."""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.invoicing import billing_run


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--as-of: '{value}' is not an ISO 8601 date-time.") from None
    if moment.tzinfo is None:
        raise CommandError("--as-of needs a time zone (e.g. 2026-12-01T00:00:00Z).")
    return moment


class Command(BaseCommand):
    help = (
        "Closes every billing period that ended before --as-of (default: now), finalizes "
        "every draft whose grace period ended before it, and runs payment retries due by "
        "then. Safe to run again: work already done is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--as-of", type=_instant, default=None, help="ISO 8601 instant")

    def handle(self, *args, as_of=None, **options):
        as_of = as_of or timezone.now()
        result = billing_run(as_of=as_of)
        from billing import payments

        retried = payments.dunning_run(now=as_of) if hasattr(payments, "dunning_run") else 0
        self.stdout.write(
            f"As of {as_of.isoformat()}: {len(result.closed)} period(s) closed, "
            f"{len(result.finalized)} invoice(s) finalized, {result.trials_ended} trial(s) "
            f"ended, {retried or 0} payment retr(y/ies) run."
        )
