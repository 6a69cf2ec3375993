"""Usage and spend alerts (BILL-6): thresholds, their once-per-period firings, the gate's
soft-quota crossings, and the e-mails they send.

A threshold fires at most once per billing period: the firing row is unique on
(organization, key, period start), so two workers that cross it at the same moment insert
one row between them; the loser's insert fails inside its own savepoint and sends nothing.
E-mail leaves after the firing commits (billing.notifications). The `usage.threshold_reached`
event is written with the firing, not from the gate's stream, so each is sent once; a hard
quota's first refusal in a period, which the gate reports on the same stream, becomes a
`quota.exhausted` event (once per meter and period).
"""

import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from billing import subscriptions as subs
from billing import webhook_events
from billing.ingest.validation import MAX_QUANTITY
from billing.models import QUANTITY_DECIMALS, AlertFiring, AlertThreshold, Meter, Subscription
from billing.notifications import notify_billing_contacts
from billing.pricing.money import ZERO, format_exact
from billing.profiles import billing_zone
from billing.selectors import UsageFilter, usage_aggregate
from billing.templatetags.billing_tags import format_amount, format_quantity
from common.errors import Conflict, InvalidInput, PermissionDenied
from common.lookups import get_or_not_found
from portal.audit import Actor, audit_record
from portal.models import Organization
from webhooks.catalog import timestamp
from webhooks.models import Event
from webhooks.services import emit

logger = logging.getLogger(__name__)

# The stream keys/gate_usage.py writes soft-quota crossings to (its CROSSINGS_KEY; a test
# keeps the two equal). Billing does not import the gate, so the name is repeated here.
QUOTA_CROSSINGS_STREAM = "tg:gate:quota-crossings"
QUOTA_CROSSINGS_GROUP = "alerts"
CLAIM_IDLE_MS = 60_000
CROSSINGS_BATCH = 100
MAX_THRESHOLDS_PER_ORGANIZATION = 100
SOURCE_THRESHOLD = "threshold"
SOURCE_SOFT_QUOTA = "soft_quota"


# --- Periods ------------------------------------------------------------------------------
def alert_period(organization: Organization, now: datetime) -> tuple[datetime, datetime]:
    """The billing period containing `now`, worked out as the gate does for its quotas (so a
    soft-quota crossing and a threshold land in the same period): the subscription's
    period (anniversary or calendar, in the org's billing time zone), or the calendar month
    (UTC) without a subscription."""
    subscription = subs.subscription_current(organization=organization)
    if subscription is not None:
        return subscription_period_at(subscription, now)
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start + relativedelta(months=1)


def subscription_period_at(subscription: Subscription, moment: datetime):
    """[start, end) of the subscription's billing period containing `moment`, by the plan in
    force then (or the last one, after the subscription's phases ended)."""
    phase = subs.phase_at(subscription, moment) or (
        subscription.phases.select_related("plan_version__plan").order_by("-starts_at").first()
    )
    plan = phase.plan_version.plan if phase else None
    return subs.period_containing(
        subscription.started_at,
        plan.interval if plan else "month",
        moment,
        zone=billing_zone(subscription.organization_id),
        calendar=bool(plan and plan.calendar_billing),
    )


# --- Thresholds: writes and reads ---------------------------------------------------------
def _threshold_value(raw) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise InvalidInput("value is a decimal string.", field="value", code="invalid_value")
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        raise InvalidInput(
            f"'{raw}' is not a number.", field="value", code="invalid_value"
        ) from None
    if not value.is_finite() or value <= 0:
        raise InvalidInput("value must be a positive number.", field="value", code="invalid_value")
    if value > MAX_QUANTITY or value.as_tuple().exponent < -QUANTITY_DECIMALS:
        raise InvalidInput(
            f"Use at most {QUANTITY_DECIMALS} decimals and {len(str(MAX_QUANTITY))} digits "
            "before the point.",
            field="value",
            code="invalid_value",
        )
    return value


def alert_threshold_create(
    *,
    actor: Actor,
    organization: Organization,
    kind: str,
    value,
    meter_code: str | None = None,
    by_operator: bool = False,
) -> AlertThreshold:
    """A usage threshold names a meter; a spend threshold is an amount in the plan's
    currency. Operators' thresholds are marked so customers cannot remove them."""
    if kind not in AlertThreshold.Kind.values:
        raise InvalidInput("kind is 'usage' or 'spend'.", field="kind", code="invalid_kind")
    meter = None
    if kind == AlertThreshold.Kind.USAGE:
        meter = (
            Meter.objects.filter(code=meter_code).first() if isinstance(meter_code, str) else None
        )
        if meter is None:
            raise InvalidInput(f"No meter '{meter_code}'.", field="meter", code="unknown_meter")
    elif meter_code not in (None, ""):
        raise InvalidInput(
            "A spend threshold has no meter.", field="meter", code="validation_error"
        )
    amount = _threshold_value(value)
    with transaction.atomic():
        # Serialises creations per org, so the limit below holds under concurrency.
        Organization.objects.select_for_update().get(pk=organization.pk)
        if (
            AlertThreshold.objects.filter(organization=organization).count()
            >= MAX_THRESHOLDS_PER_ORGANIZATION
        ):
            raise Conflict(
                f"At most {MAX_THRESHOLDS_PER_ORGANIZATION} thresholds per organization.",
                code="too_many_thresholds",
            )
        threshold = AlertThreshold.objects.create(
            organization=organization,
            kind=kind,
            meter=meter,
            value=amount,
            set_by_operator=by_operator,
        )
        audit_record(
            actor=actor,
            action="alert_threshold.created",
            organization=organization,
            target=threshold,
            changes={
                "kind": kind,
                "meter": meter.code if meter else None,
                "value": str(amount),
                "set_by_operator": by_operator,
            },
        )
    return threshold


def alert_threshold_get(*, organization: Organization, threshold_id) -> AlertThreshold:
    """One of the org's thresholds; another org's id is simply not found."""
    return get_or_not_found(
        AlertThreshold.objects.filter(organization=organization).select_related("meter"),
        threshold_id,
        "alert threshold",
    )


def alert_threshold_delete(
    *, actor: Actor, threshold: AlertThreshold, by_operator: bool = False
) -> None:
    """Customers may remove their own thresholds, never the operator's. Past firings go with
    the threshold (they would otherwise point at nothing)."""
    if threshold.set_by_operator and not by_operator:
        raise PermissionDenied(
            "This threshold was set by the operator; only the operator can remove it.",
            code="operator_threshold",
        )
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="alert_threshold.deleted",
            organization=threshold.organization,
            target=threshold,
            changes={
                "kind": threshold.kind,
                "meter": threshold.meter.code if threshold.meter_id else None,
                "value": str(threshold.value),
            },
        )
        threshold.delete()


def alert_threshold_list(*, organization: Organization) -> QuerySet[AlertThreshold]:
    return AlertThreshold.objects.filter(organization=organization).select_related("meter")


def alert_firing_list(*, organization: Organization) -> QuerySet[AlertFiring]:
    """Newest first (fired_at, then id, for a stable cursor)."""
    return (
        AlertFiring.objects.filter(organization=organization)
        .select_related("threshold__meter")
        .order_by("-fired_at", "-id")
    )


def alerts_url(organization: Organization) -> str:
    """The Alerts page, for e-mails."""
    path = reverse("org_billing:alerts", kwargs={"slug": organization.slug})
    return f"{settings.SITE_URL.rstrip('/')}{path}"


# --- Firing -------------------------------------------------------------------------------
def _record_firing(
    *,
    organization: Organization,
    key: str,
    source: str,
    period_start: datetime,
    meter: str,
    value: Decimal,
    limit: Decimal,
    threshold: AlertThreshold | None,
    now: datetime,
    email: tuple[str, str, dict],
    currency: str | None = None,
) -> AlertFiring | None:
    """Inserts the firing and queues its e-mail and its `usage.threshold_reached` event in
    one savepoint; None if this period's firing of `key` exists already (possibly inserted
    a moment ago by another worker)."""
    subject, template, context = email
    try:
        with transaction.atomic():
            firing = AlertFiring.objects.create(
                organization=organization,
                threshold=threshold,
                source=source,
                key=key,
                meter=meter,
                period_start=period_start,
                value=value,
                limit=limit,
                fired_at=now,
            )
            notify_billing_contacts(
                organization,
                subject=subject,
                template=template,
                context={**context, "firing": firing, "alerts_url": alerts_url(organization)},
            )
            emit(
                organization=organization,
                type="usage.threshold_reached",
                data=webhook_events.firing_data(
                    firing,
                    kind=threshold.kind if threshold is not None else "usage",  # soft quota
                    currency=currency,
                ),
            )
    except IntegrityError:
        return None
    return firing


def _usage(organization: Organization, meter: Meter, start: datetime, end: datetime) -> Decimal:
    if end <= start:
        return ZERO
    [total] = usage_aggregate(
        UsageFilter(organization_id=organization.id, meter=meter, start=start, end=end)
    )
    return total["quantity"] or ZERO


def _spend_so_far(subscription: Subscription, start: datetime, end: datetime, now) -> Decimal:
    """The period's bill to date: the preview's `to_date` quote (billing.subscriptions)."""
    return subs._quote(subscription, subs._segments(subscription, start, end, now)).total


def bill_currency(subscription: Subscription | None, now: datetime) -> str:
    """The currency of the org's bills (spend thresholds are amounts in it)."""
    if subscription is None:
        return "USD"
    phase = subs.phase_at(subscription, now) or subs.phase_at(
        subscription, subscription.current_period_start
    )
    return phase.plan_version.plan.currency if phase else "USD"


@dataclass
class AlertCheck:
    period_start: datetime
    period_end: datetime
    fired: list[AlertFiring]


def alerts_check(*, organization: Organization, now: datetime | None = None) -> AlertCheck:
    """Fires every threshold of the org that its usage or spend this period has reached and
    that has not fired this period yet. Safe to run any number of times, concurrently."""
    now = now or timezone.now()
    start, end = alert_period(organization, now)
    thresholds = list(alert_threshold_list(organization=organization))
    result = AlertCheck(period_start=start, period_end=end, fired=[])
    if not thresholds:
        return result
    already = set(
        AlertFiring.objects.filter(organization=organization, period_start=start).values_list(
            "key", flat=True
        )
    )
    subscription = subs.subscription_current(organization=organization)
    currency = bill_currency(subscription, now)
    usage_by_meter: dict = {}
    spend: Decimal | None = None
    for threshold in thresholds:
        key = f"threshold:{threshold.id}"
        if key in already:
            continue
        if threshold.kind == AlertThreshold.Kind.USAGE:
            meter = threshold.meter
            if meter.id not in usage_by_meter:
                usage_by_meter[meter.id] = _usage(organization, meter, start, min(now, end))
            value = usage_by_meter[meter.id]
            shown_value = f"{format_quantity(value)} {meter.unit}s"
            shown_limit = f"{format_quantity(threshold.value)} {meter.unit}s"
            subject = f"Usage alert: {meter.name} reached {format_quantity(threshold.value)}"
            meter_code = meter.code
        else:
            if subscription is None:
                continue  # no subscription, no bill
            if spend is None:
                spend = _spend_so_far(subscription, start, end, now)
            value = spend
            shown_value = format_amount(value, currency)
            shown_limit = format_amount(threshold.value, currency)
            subject = f"Spend alert: this period's bill reached {shown_limit}"
            meter_code = ""
        if value < threshold.value:
            continue
        firing = _record_firing(
            organization=organization,
            key=key,
            source=SOURCE_THRESHOLD,
            period_start=start,
            meter=meter_code,
            value=value,
            limit=threshold.value,
            threshold=threshold,
            now=now,
            currency=currency if threshold.kind == AlertThreshold.Kind.SPEND else None,
            email=(
                subject,
                "billing/email/alert_threshold.txt",
                {
                    "threshold": threshold,
                    "shown_value": shown_value,
                    "shown_limit": shown_limit,
                    "period_start": start,
                    "period_end": end,
                },
            ),
        )
        if firing is not None:
            result.fired.append(firing)
    return result


def organizations_with_thresholds() -> QuerySet[Organization]:
    return Organization.objects.filter(alert_thresholds__isnull=False).distinct()


# --- The gate's soft-quota crossings ------------------------------------------------------
def soft_quota_crossing_record(
    *,
    organization_id,
    meter_code: str,
    period_start: datetime,
    limit: Decimal,
    now: datetime | None = None,
) -> AlertFiring | None:
    """A soft quota the gate saw crossed: a firing keyed `soft_quota:<meter>` for the period,
    and an e-mail, once. None when it fired already or the org is gone."""
    now = now or timezone.now()
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return None
    key = f"{SOURCE_SOFT_QUOTA}:{meter_code}"
    if AlertFiring.objects.filter(
        organization=organization, key=key, period_start=period_start
    ).exists():
        return None
    meter = Meter.objects.filter(code=meter_code).first()
    # The gate's counter passed the limit; the ledger may trail it by a few seconds.
    value = limit
    if meter is not None:
        value = max(limit, _usage(organization, meter, period_start, now))
    name = meter.name if meter else meter_code
    unit = f" {meter.unit}s" if meter else ""
    return _record_firing(
        organization=organization,
        key=key,
        source=SOURCE_SOFT_QUOTA,
        period_start=period_start,
        meter=meter_code,
        value=value,
        limit=limit,
        threshold=None,
        now=now,
        email=(
            f"Quota alert: {name} passed your plan's {format_quantity(limit)}",
            "billing/email/alert_soft_quota.txt",
            {
                "meter_name": name,
                "shown_value": f"{format_quantity(value)}{unit}",
                "shown_limit": f"{format_quantity(limit)}{unit}",
                "period_start": period_start,
            },
        ),
    )


def hard_quota_exhaustion_record(
    *,
    organization_id,
    meter_code: str,
    period_start: datetime,
    period_end: datetime,
    limit: Decimal,
    used: Decimal,
    exhausted_at: datetime,
) -> bool:
    """A hard quota the gate started refusing calls at: a `quota.exhausted` event, once per
    meter and period (the gate reports it once; a repeated report, e.g. after Redis lost
    the gate's flag, finds the event under the org's row lock). False when it was known."""
    data = {
        "meter": meter_code,
        "limit": format_exact(limit),
        "used": format_exact(used),
        "period_start": timestamp(period_start),
        "period_end": timestamp(period_end),
        "exhausted_at": timestamp(exhausted_at),
    }
    with transaction.atomic():
        organization = Organization.objects.select_for_update().filter(pk=organization_id).first()
        if organization is None or (
            Event.objects.filter(
                organization=organization,
                type="quota.exhausted",
                payload__data__meter=meter_code,
                payload__data__period_start=data["period_start"],
            ).exists()
        ):
            return False
        emit(organization=organization, type="quota.exhausted", data=data)
    return True


def _ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(QUOTA_CROSSINGS_STREAM, QUOTA_CROSSINGS_GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _field(fields: dict, name: str) -> str:
    value = fields.get(name.encode(), fields.get(name))
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _handle_crossing(fields: dict) -> None:
    """One stream entry; a malformed one is logged and dropped (retrying cannot fix it)."""
    try:
        period_start = datetime.fromisoformat(_field(fields, "period_start"))
        limit = Decimal(_field(fields, "limit"))
        organization_id = uuid.UUID(_field(fields, "organization"))
        meter_code = _field(fields, "meter")
        if period_start.tzinfo is None or not limit.is_finite() or not meter_code:
            raise ValueError("incomplete entry")
    except (ValueError, ArithmeticError):
        logger.warning("dropping a malformed quota crossing: %r", fields)
        return
    if _field(fields, "behaviour") == "hard":
        # A hard quota's first refusal this period (keys/gate.py, on the deny path only).
        try:
            period_end = datetime.fromisoformat(_field(fields, "period_end"))
            used = Decimal(_field(fields, "used"))
            exhausted_at = datetime.fromisoformat(_field(fields, "at"))
            if not used.is_finite() or None in (period_end.tzinfo, exhausted_at.tzinfo):
                raise ValueError("incomplete entry")
        except (ValueError, ArithmeticError):
            logger.warning("dropping a malformed quota exhaustion: %r", fields)
            return
        hard_quota_exhaustion_record(
            organization_id=organization_id,
            meter_code=meter_code,
            period_start=period_start,
            period_end=period_end,
            limit=limit,
            used=used,
            exhausted_at=exhausted_at,
        )
        return
    soft_quota_crossing_record(
        organization_id=organization_id,
        meter_code=meter_code,
        period_start=period_start,
        limit=limit,
    )


def quota_crossings_consume(client: redis.Redis, *, consumer: str | None = None) -> int:
    """Turns the gate's soft-quota crossings into firings; returns how many entries it handled.

    Reads through a consumer group and acknowledges an entry only after its firing has
    committed, so a worker killed midway leaves the entry pending and another claims it
    after CLAIM_IDLE_MS; handling it twice is harmless (once per period). Billing is the
    stream's only reader, so handled entries are deleted to keep it short.
    """
    consumer = consumer or socket.gethostname()
    _ensure_group(client)
    handled = 0
    _cursor, claimed, *_ = client.xautoclaim(
        QUOTA_CROSSINGS_STREAM,
        QUOTA_CROSSINGS_GROUP,
        consumer,
        CLAIM_IDLE_MS,
        count=CROSSINGS_BATCH,
    )
    entries = list(claimed or [])
    while True:
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                client.xack(QUOTA_CROSSINGS_STREAM, QUOTA_CROSSINGS_GROUP, entry_id)
                continue
            try:
                _handle_crossing(fields)
            except Exception:
                # Left pending (it is claimed and tried again later), never in the way of
                # the entries behind it.
                logger.exception("quota crossing %s could not be handled", entry_id)
                continue
            client.xack(QUOTA_CROSSINGS_STREAM, QUOTA_CROSSINGS_GROUP, entry_id)
            client.xdel(QUOTA_CROSSINGS_STREAM, entry_id)
            handled += 1
        reply = client.xreadgroup(
            QUOTA_CROSSINGS_GROUP, consumer, {QUOTA_CROSSINGS_STREAM: ">"}, count=CROSSINGS_BATCH
        )
        if not reply or not reply[0][1]:
            return handled
        entries = reply[0][1]
