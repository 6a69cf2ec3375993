"""The period close, a chunk of subscriptions at a time.

Closing a period prices it exactly as the bill preview does (billing.invoicing.compose over
billing.quotes), but reads what it needs for a whole chunk at once: the subscriptions (row
locks, skipping any another worker holds), their phases and charges, billing profiles, tax
rates, add-ons, credit, earlier invoice lines and anomalies in one query each, and the usage
of every window in one statement (rollups for whole hours plus the ledger's partial hours,
the same split as billing.selectors.usage_aggregate). Invoices and lines are inserted in
bulk; the unique constraint on (subscription, period_start) still decides, so a period is
invoiced once whatever runs the close.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from django.db import connection, transaction
from django.utils import timezone

from billing import entitlements
from billing import invoicing as inv
from billing import subscriptions as subs
from billing.anomalies import period_days
from billing.credits import credits_roll_over
from billing.models import (
    BillingProfile,
    Coupon,
    CreditGrant,
    Invoice,
    InvoiceLine,
    Meter,
    Subscription,
    SubscriptionAddOn,
    SubscriptionPhase,
    TaxRate,
    UsageAnomaly,
)
from billing.pricing.money import ZERO
from billing.profiles import tax_rate_for
from billing.quotes import TaxSpec
from billing.selectors import UsageFilter, _ceil_hour, _floor_hour, usage_aggregate

UsageKey = tuple  # (organization id, meter id, start, end)


class BulkUsage:
    """Usage of many windows, read in one statement on PostgreSQL.

    Pricing runs twice: first with `recording` on, to learn which windows it needs (every
    answer is zero), then with the figures. Additive meters (count, sum) are read in bulk,
    grouped by endpoint for the invoice's breakdown; other aggregations are read one
    window at a time through usage_aggregate.
    """

    def __init__(self) -> None:
        self.recording = True
        self.wanted: set[UsageKey] = set()
        self.parts: dict[UsageKey, dict[str, Decimal]] = {}

    def _key(self, organization_id, meter: Meter, start: datetime, end: datetime) -> UsageKey:
        return (organization_id, meter.id, start, end)

    def quantity(self, organization_id, meter: Meter, start: datetime, end: datetime):
        if end <= start:
            return ZERO
        key = self._key(organization_id, meter, start, end)
        if self.recording:
            if meter.aggregation in subs.ADDITIVE:
                self.wanted.add(key)
            return ZERO
        if meter.aggregation not in subs.ADDITIVE:
            return subs._usage(organization_id, meter, start, end)
        return sum(self.parts.get(key, {}).values(), ZERO)

    def breakdown(self, organization_id, meter: Meter, start: datetime, end: datetime):
        return list(self.parts.get(self._key(organization_id, meter, start, end), {}).items())

    def load(self) -> None:
        self.recording = False
        wanted = sorted(self.wanted, key=str)
        if connection.vendor != "postgresql":
            for key in wanted:
                self.parts[key] = self._read_one(key)
            return
        for offset in range(0, len(wanted), 2000):
            self._read_bulk(wanted[offset : offset + 2000])

    @staticmethod
    def _read_one(key: UsageKey) -> dict[str, Decimal]:
        organization_id, meter_id, start, end = key
        rows = usage_aggregate(
            UsageFilter(
                organization_id=organization_id,
                meter=Meter.objects.get(pk=meter_id),
                start=start,
                end=end,
                group_by=("endpoint",),
            )
        )
        return {row["endpoint"]: row["quantity"] or ZERO for row in rows}

    def _read_bulk(self, keys: list[UsageKey]) -> None:
        pieces = []  # (window number, org, meter, 'r' rollup hours / 'l' ledger rows, a, b)
        for number, (organization_id, meter_id, start, end) in enumerate(keys):
            first, last = _ceil_hour(start), _floor_hour(end)
            if first < last:
                pieces.append((number, organization_id, meter_id, "r", first, last))
                if start < first:
                    pieces.append((number, organization_id, meter_id, "l", start, first))
                if last < end:
                    pieces.append((number, organization_id, meter_id, "l", last, end))
            else:
                pieces.append((number, organization_id, meter_id, "l", start, end))
        values = ", ".join(
            ["(%s::int, %s::uuid, %s::uuid, %s, %s::timestamptz, %s::timestamptz)"] * len(pieces)
        )
        sql = f"""
            WITH p(n, org, meter, kind, a, b) AS (VALUES {values})
            SELECT p.n, r.endpoint, SUM(r.quantity_sum)
            FROM p JOIN billing_usagerollup r
              ON r.organization_id = p.org AND r.meter_id = p.meter AND r.environment = 'live'
             AND r.hour >= p.a AND r.hour < p.b
            WHERE p.kind = 'r'
            GROUP BY 1, 2
            UNION ALL
            SELECT p.n, e.endpoint, SUM(e.quantity)
            FROM p JOIN billing_usageevent e
              ON e.organization_id = p.org AND e.meter_id = p.meter AND e.environment = 'live'
             AND e.occurred_at >= p.a AND e.occurred_at < p.b
            WHERE p.kind = 'l'
            GROUP BY 1, 2
        """  # noqa: S608 - only placeholders are interpolated
        params = [value for piece in pieces for value in piece]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        for key in keys:
            self.parts[key] = {}
        for number, endpoint, total in rows:
            parts = self.parts[keys[number]]
            parts[endpoint] = parts.get(endpoint, ZERO) + (total or ZERO)


def close_chunk(subscription_ids, *, as_of: datetime, now: datetime | None = None) -> list:
    """Closes every period of these subscriptions that ended by `as_of` (several, oldest
    first, for a subscription that is behind). Returns the drafts it created."""
    created = []
    while True:
        batch = _close_once(subscription_ids, as_of, now or timezone.now())
        if batch is None:
            return created
        created.extend(batch)


def _close_once(subscription_ids, as_of: datetime, now: datetime) -> list | None:
    with transaction.atomic():
        locked = list(
            Subscription.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("organization", "coupon")
            .filter(pk__in=list(subscription_ids), current_period_end__lte=as_of)
            .exclude(status=Subscription.Status.CANCELED)
            .order_by("pk")
        )
        if not locked:
            return None
        return _close_locked(locked, now)


@dataclass
class _Bundle:
    """What pricing reads for a chunk of subscriptions, one query per kind."""

    phases: dict
    profiles: dict
    rates: list
    addons: dict
    grants: dict

    @classmethod
    def load(cls, subscriptions: list[Subscription], *, lock_grants: bool = False):
        ids = [subscription.pk for subscription in subscriptions]
        organizations = {subscription.organization_id for subscription in subscriptions}
        phases = defaultdict(list)
        for phase in (
            SubscriptionPhase.objects.filter(subscription_id__in=ids)
            .select_related("plan_version__plan")
            .prefetch_related("plan_version__charges__meter")
            .order_by("starts_at")
        ):
            phases[phase.subscription_id].append(phase)
        # Every add-on item, removed ones too: which count is decided per invoice (those
        # attached when its period ended), whenever the close or finalization runs.
        addons = defaultdict(list)
        for item in SubscriptionAddOn.objects.filter(subscription_id__in=ids).select_related(
            "addon"
        ):
            addons[item.subscription_id].append(item)
        grants = defaultdict(list)
        granted = CreditGrant.objects.filter(organization_id__in=organizations)
        if lock_grants:  # the amount priced is then the amount drawn
            granted = granted.select_for_update().order_by("pk")
        for grant in granted:
            if grant.remaining > 0:
                grants[grant.organization_id].append(grant)
        return cls(
            phases=phases,
            profiles={
                profile.organization_id: profile
                for profile in BillingProfile.objects.filter(organization_id__in=organizations)
            },
            rates=list(TaxRate.objects.filter(active=True)),
            addons=addons,
            grants=grants,
        )

    def profile(self, subscription: Subscription) -> BillingProfile:
        return self.profiles.get(subscription.organization_id) or BillingProfile(
            organization=subscription.organization
        )

    def credits(self, organization_id, currency: str, period_end: datetime) -> Decimal:
        return sum(
            (
                grant.remaining
                for grant in self.grants[organization_id]
                if subs.credit_usable(grant, currency, period_end)
            ),
            ZERO,
        )

    def context(self, invoice: Invoice, usage: "BulkUsage") -> inv.PricingContext:
        subscription = invoice.subscription
        start, end = invoice.period_start, invoice.period_end
        rate = tax_rate_for(self.profile(subscription), self.rates)
        return inv.PricingContext(
            phases=[
                phase
                for phase in self.phases[subscription.pk]
                if phase.starts_at < end and (phase.ends_at is None or phase.ends_at > start)
            ],
            addons=attached_addons(self.addons[subscription.pk], end),
            coupon=_coupon(invoice),
            credits=self.credits(subscription.organization_id, invoice.currency, end),
            tax=TaxSpec(rate.name, rate.percent, rate.inclusive) if rate else None,
            earlier_lines=[],
            anomalies={},
            usage_reader=usage.quantity,
            breakdown_reader=usage.breakdown,
            next_version=_version_at(self.phases[subscription.pk], end),
            zone=self.profile(subscription).timezone,
        )


def attached_addons(items: list[SubscriptionAddOn], period_end: datetime) -> list[tuple]:
    """The add-ons a period bills: those attached when it ended, each for the whole period
    (an add-on removed before the end is not billed for it, one added before it is). Read
    at the period's end rather than when the close runs, so an add-on added or removed
    during the grace period lands on the period it belongs to."""
    return [
        (item.addon, item.quantity)
        for item in items
        if item.added_at < period_end and (item.removed_at is None or item.removed_at >= period_end)
    ]


def _coupon(invoice: Invoice):
    subscription = invoice.subscription
    if not invoice.coupon_code:
        return None
    if subscription.coupon is not None and subscription.coupon.code == invoice.coupon_code:
        return subscription.coupon
    return Coupon.objects.filter(code=invoice.coupon_code).first()


def _price_all(invoices: list[Invoice], bundle: _Bundle, now: datetime) -> dict:
    """Prices every invoice (totals set on them); returns each one's lines (unsaved)."""
    usage = BulkUsage()
    contexts = {invoice.pk: bundle.context(invoice, usage) for invoice in invoices}
    earlier = list(inv.earlier_usage_lines(invoices))
    for invoice in invoices:
        contexts[invoice.pk].earlier_lines = [
            line for line in earlier if line.invoice.subscription_id == invoice.subscription_id
        ]
    _attach_anomalies(invoices, contexts)
    for invoice_id, amount in inv.advance_paid(invoices).items():
        contexts[invoice_id].advance_paid = amount
    for invoice in invoices:
        if invoice.kind == Invoice.Kind.OPENING:
            contexts[invoice.pk].addons = []
    for invoice in invoices:  # first pass: which usage windows pricing will read
        inv.compose(invoice, now, contexts[invoice.pk])
    usage.load()
    return {invoice.pk: inv.compose(invoice, now, contexts[invoice.pk]) for invoice in invoices}


def _close_locked(locked: list[Subscription], now: datetime) -> list[Invoice]:
    bundle = _Bundle.load(locked)
    invoices = []
    for subscription in locked:
        start, end = subscription.current_period_start, subscription.current_period_end
        version = _version_at(bundle.phases[subscription.pk], end - timedelta(microseconds=1))
        coupon = subs._coupon_applies(subscription)
        invoices.append(
            Invoice(
                id=uuid4(),
                organization=subscription.organization,
                subscription=subscription,
                currency=version.plan.currency if version else "USD",
                period_start=start,
                period_end=end,
                plan=version.plan.code if version else "",
                plan_version=version.number if version else 0,
                usage_measured_at=now,
                finalize_after=end + inv._grace(),
                coupon_code=coupon.code if coupon else "",
                collection=bundle.profile(subscription).collection,
            )
        )
    lines = _price_all(invoices, bundle, now)
    Invoice.objects.bulk_create(invoices, ignore_conflicts=True)
    stored = set(
        Invoice.objects.filter(pk__in=[invoice.pk for invoice in invoices]).values_list(
            "pk", flat=True
        )
    )
    InvoiceLine.objects.bulk_create(
        [line for invoice in invoices if invoice.pk in stored for line in lines[invoice.pk]]
    )
    _advance_all(
        locked,
        {invoice.subscription_id: invoice for invoice in invoices},
        bundle.profiles,
        bundle.phases,
        bundle.grants,
    )
    return [invoice for invoice in invoices if invoice.pk in stored]


# --- Finalization ---------------------------------------------------------------------------
def finalize_chunk(invoice_ids, *, as_of: datetime | None = None, now: datetime | None = None):
    """Draft -> open for these invoices (those still drafts and not locked by another
    worker): re-priced with the usage known now, credit drawn, customer details and tax
    frozen, numbered in period order without gaps. Returns the invoices it finalized."""
    now = now or timezone.now()
    issued_at = as_of or now
    with transaction.atomic():
        invoices = list(
            Invoice.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("organization", "subscription__coupon")
            .filter(pk__in=list(invoice_ids), status=Invoice.Status.DRAFT)
            .order_by("period_start", "pk")
        )
        if not invoices:
            return []
        subscriptions = {invoice.subscription_id: invoice.subscription for invoice in invoices}
        bundle = _Bundle.load(list(subscriptions.values()), lock_grants=True)
        # Two periods of one subscription (a close that caught up) are finalized in turn,
        # each round saved before the next is priced: the later one then sees the credit
        # the earlier drew and the late usage it already adjusted.
        by_org = defaultdict(list)
        for invoice in invoices:
            by_org[invoice.organization_id].append(invoice)
        for group in _rounds(by_org):
            lines = _price_all(group, bundle, now)
            for invoice in group:
                _draw(bundle.grants[invoice.organization_id], invoice)
            InvoiceLine.objects.filter(invoice__in=group).delete()
            InvoiceLine.objects.bulk_create([line for i in group for line in lines[i.pk]])
            numbers = inv.reserve_numbers("INV", issued_at, len(group))
            for invoice, number in zip(group, numbers, strict=True):
                inv.mark_finalized(invoice, number, issued_at, bundle.profile(invoice.subscription))
            Invoice.objects.bulk_update(group, inv.FINALIZED_FIELDS)
        changed_grants = [
            g for grants in bundle.grants.values() for g in grants if getattr(g, "_drawn", False)
        ]
        CreditGrant.objects.bulk_update(changed_grants, ["remaining"])
    return invoices


def _rounds(by_org: dict) -> list[list[Invoice]]:
    """Invoices in rounds: each round holds at most one invoice per customer, oldest first."""
    rounds = []
    for group in by_org.values():
        for position, invoice in enumerate(group):
            if len(rounds) <= position:
                rounds.append([])
            rounds[position].append(invoice)
    return rounds


def _draw(grants: list[CreditGrant], invoice: Invoice) -> None:
    """Takes the invoice's credit from the grants that expire first (in memory)."""
    left = invoice.credits
    usable = sorted(
        (g for g in grants if subs.credit_usable(g, invoice.currency, invoice.period_end)),
        key=lambda g: (g.expires_at is None, g.expires_at or invoice.period_end, g.granted_at),
    )
    for grant in usable:
        if left <= 0:
            break
        taken = min(grant.remaining, left)
        grant.remaining -= taken
        grant._drawn = True
        left -= taken


def _version_at(phases: list[SubscriptionPhase], moment: datetime):
    for phase in reversed(phases):
        if phase.starts_at <= moment and (phase.ends_at is None or phase.ends_at > moment):
            return phase.plan_version
    return None


def _attach_anomalies(invoices: list[Invoice], contexts: dict) -> None:
    if not invoices:
        return
    days = {
        invoice.pk: period_days(invoice.period_start, invoice.period_end) for invoice in invoices
    }
    found = defaultdict(list)
    for anomaly in (
        UsageAnomaly.objects.filter(
            organization_id__in={invoice.organization_id for invoice in invoices},
            day__gte=min(first for first, _last in days.values()),
            day__lte=max(last for _first, last in days.values()),
        )
        .select_related("meter")
        .order_by("day")
    ):
        found[anomaly.organization_id].append(anomaly)
    for invoice in invoices:
        first, last = days[invoice.pk]
        texts = defaultdict(list)
        for anomaly in found.get(invoice.organization_id, ()):
            if first <= anomaly.day <= last:  # as billing.anomalies.anomalies_for_period
                texts[anomaly.meter.code].append(anomaly.explanation)
        contexts[invoice.id].anomalies = {code: " ".join(t) for code, t in texts.items()}


def _advance_all(locked, invoices, profiles, phases, grants) -> None:
    """Each subscription moves on to its next period (or ends, if it was to cancel)."""
    changed = []
    for subscription in locked:
        end = subscription.current_period_end
        invoice = invoices[subscription.pk]
        if invoice.coupon_code and subscription.coupon_id:
            subscription.coupon_periods_used += 1
        if subscription.cancel_at_period_end:
            subscription.status = Subscription.Status.CANCELED
            subscription.canceled_at = end
            SubscriptionPhase.objects.filter(
                subscription=subscription, ends_at__isnull=True
            ).update(ends_at=end)
        else:
            version = _version_at(phases[subscription.pk], end)
            plan = version.plan if version else None
            profile = profiles.get(subscription.organization_id)
            subscription.current_period_end = subs.next_period_end(
                subscription, end, plan, profile.timezone if profile else "UTC"
            )
            subscription.current_period_start = end
        changed.append(subscription)
        if any(
            g.rolls_over and g.expires_at is not None and g.expires_at <= end
            for g in grants[subscription.organization_id]
        ):
            credits_roll_over(
                actor=inv.SYSTEM, organization=subscription.organization, period_end=end
            )
        entitlements.invalidate(subscription.organization_id)
    Subscription.objects.bulk_update(
        changed,
        [
            "current_period_start",
            "current_period_end",
            "coupon_periods_used",
            "status",
            "canceled_at",
        ],
    )
