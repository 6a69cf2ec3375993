"""Reads of usage: aggregates over a window (rollups plus exact edges) and raw ledger rows.

Whole hours come from the hourly rollups; the partial hours at either end of a window come
from the ledger, so any window is exact while a 30-day query reads ~720 rollup rows per
bucket instead of millions of events.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from billing.models import NO_ID, Meter, UsageCorrection, UsageEvent, UsageRollup, UsageUniqueValue
from common.lookups import get_or_not_found

GROUPS = ("day", "hour", "project", "key", "endpoint")
HOUR = timedelta(hours=1)
DISPLAY_QUANTUM = Decimal("0.000001")


def meter_list() -> QuerySet[Meter]:
    return Meter.objects.all()


def meter_get_by_code(code: str) -> Meter | None:
    return Meter.objects.filter(code=code).first()


@dataclass(frozen=True)
class UsageFilter:
    organization_id: UUID
    meter: Meter
    start: datetime
    end: datetime
    environment: str = "live"
    project_id: UUID | None = None
    api_key_id: UUID | None = None
    endpoint: str | None = None
    group_by: tuple[str, ...] = ()


@dataclass
class _Partial:
    """What one group has accumulated from rollups and ledger edges."""

    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    last: tuple | None = None  # (occurred_at, ledger id, quantity)
    values: set = field(default_factory=set)

    def add(self, *, count=0, total=None, maximum=None, last=None) -> None:
        self.count += count or 0
        self.total += total or 0
        if maximum is not None and (self.maximum is None or maximum > self.maximum):
            self.maximum = maximum
        if (
            last is not None
            and last[0] is not None
            and (self.last is None or last[:2] > self.last[:2])
        ):
            self.last = last


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floored = _floor_hour(moment)
    return floored if floored == moment else floored + HOUR


@dataclass
class _Plan:
    """Where each part of a window is read from.

    Whole hours come from rollups. A partial hour at either end is read from the ledger,
    unless the rest of that hour holds no events (then its rollup is exact: the usual case
    for "up to now"), or, for additive meters, the rest is the smaller part (then it is the
    hour's rollup minus the rest). Raw reads stay bounded to half an hour per edge.
    """

    rollup_hours: list[tuple[datetime, datetime]] = field(default_factory=list)
    ledger_add: list[tuple[datetime, datetime]] = field(default_factory=list)
    ledger_subtract: list[tuple[datetime, datetime]] = field(default_factory=list)


def _plan_window(usage: UsageFilter) -> _Plan:
    start, end = usage.start, usage.end
    first, last = _ceil_hour(start), _floor_hour(end)
    plan = _Plan()
    if first < last:
        plan.rollup_hours.append((first, last))
    pieces = []  # (hour, piece start, piece end)
    if first > last:
        pieces.append((last, start, end))
    else:
        if start < first:
            pieces.append((first - HOUR, start, first))
        if last < end:
            pieces.append((last, last, end))
    additive = usage.meter.aggregation in (Meter.Aggregation.COUNT, Meter.Aggregation.SUM)
    for hour, piece_start, piece_end in pieces:
        rest = [(a, b) for a, b in ((hour, piece_start), (piece_end, hour + HOUR)) if a < b]
        if not any(ledger_rows(usage, a, b).exists() for a, b in rest):
            plan.rollup_hours.append((hour, hour + HOUR))
        elif additive and piece_end - piece_start > HOUR / 2:
            plan.rollup_hours.append((hour, hour + HOUR))
            plan.ledger_subtract.extend(rest)
        else:
            plan.ledger_add.append((piece_start, piece_end))
    return plan


# group name -> (rollup expression, ledger expression)
def _group_expressions(group: str) -> tuple:
    return {
        "day": (TruncDay("hour"), TruncDay("occurred_at")),
        "hour": (F("hour"), TruncHour("occurred_at")),
        "project": (F("project_id"), F("project_id")),
        "key": (F("api_key_id"), F("api_key_id")),
        "endpoint": (F("endpoint"), F("endpoint")),
    }[group]


def _normalise_group_value(group: str, value):
    if group in ("project", "key"):
        if value is None or value == NO_ID:
            return None
        return value if isinstance(value, UUID) else UUID(str(value))
    if group == "day":
        return value.date() if isinstance(value, datetime) else value
    return value


def _scope(usage: UsageFilter) -> Q:
    """The filter's customer, meter, environment and dimensions, the same on every table."""
    scope = Q(
        organization_id=usage.organization_id,
        meter_id=usage.meter.id,
        environment=usage.environment,
    )
    if usage.project_id:
        scope &= Q(project_id=usage.project_id)
    if usage.api_key_id:
        scope &= Q(api_key_id=usage.api_key_id)
    if usage.endpoint is not None:
        scope &= Q(endpoint=usage.endpoint)
    return scope


def _rollup_rows(usage: UsageFilter, hours: list[tuple], model) -> QuerySet:
    in_hours = Q()
    for first, last in hours:
        in_hours |= Q(hour__gte=first, hour__lt=last)
    return model.objects.filter(in_hours, _scope(usage))


def ledger_rows(usage: UsageFilter, start: datetime, end: datetime) -> QuerySet[UsageEvent]:
    return UsageEvent.objects.filter(_scope(usage), occurred_at__gte=start, occurred_at__lt=end)


def _effective(rows: QuerySet[UsageEvent], organization_id) -> QuerySet[UsageEvent]:
    """Rows that count for max, last and unique: neither reversals nor reversed originals."""
    reversed_ids = UsageCorrection.objects.filter(organization_id=organization_id).values(
        "original_ledger_id"
    )
    return rows.filter(reverses__isnull=True).exclude(id__in=reversed_ids)


def _grouped(rows: QuerySet, groups: dict, **aggregates) -> list[dict]:
    """GROUP BY the group expressions (or aggregate the whole set when there are none)."""
    if not groups:
        return [rows.aggregate(**aggregates)]
    return list(rows.annotate(**groups).values(*groups).annotate(**aggregates).order_by())


def usage_aggregate(usage: UsageFilter) -> list[dict]:
    """One dict per group: the group's fields plus `quantity` (a Decimal, or None)."""
    aggregation = usage.meter.aggregation
    groups = usage.group_by
    partials: dict[tuple, _Partial] = {}

    def partial_for(row: dict, prefix: str = "g_") -> _Partial:
        key = tuple(_normalise_group_value(g, row[prefix + g]) for g in groups)
        return partials.setdefault(key, _Partial())

    plan = _plan_window(usage)
    hours, edges = plan.rollup_hours, plan.ledger_add
    rollup_groups = {f"g_{g}": _group_expressions(g)[0] for g in groups}
    ledger_groups = {f"g_{g}": _group_expressions(g)[1] for g in groups}

    if aggregation == Meter.Aggregation.UNIQUE_COUNT:
        if hours:
            values = (
                _rollup_rows(usage, hours, UsageUniqueValue)
                .annotate(**rollup_groups)
                .values(*rollup_groups, "value")
                .distinct()
            )
            for row in values.iterator(chunk_size=5000):
                partial_for(row).values.add(row["value"])
        prop = usage.meter.unique_property
        for start, end in edges:
            rows = _effective(ledger_rows(usage, start, end), usage.organization_id)
            for row in rows.annotate(**ledger_groups).values(*ledger_groups, "properties"):
                value = (row["properties"] or {}).get(prop)
                if value is not None:
                    partial_for(row).values.add(str(value)[:255])
    else:
        if hours:
            sums = _grouped(
                _rollup_rows(usage, hours, UsageRollup),
                rollup_groups,
                count=Sum("event_count"),
                total=Sum("quantity_sum"),
                maximum=Max("quantity_max"),
            )
            for row in sums:
                partial_for(row).add(count=row["count"], total=row["total"], maximum=row["maximum"])
            if aggregation == Meter.Aggregation.LAST:
                latest = (
                    _rollup_rows(usage, hours, UsageRollup)
                    .exclude(last_at__isnull=True)
                    .annotate(**rollup_groups)
                    .values(*rollup_groups, "last_at", "last_ledger_id", "last_quantity")
                )
                for row in latest:
                    partial_for(row).add(
                        last=(row["last_at"], row["last_ledger_id"], row["last_quantity"])
                    )
        for start, end in plan.ledger_subtract:  # only planned for count and sum meters
            rows = ledger_rows(usage, start, end)
            for row in _grouped(rows, ledger_groups, total=Sum("quantity")):
                partial_for(row).add(total=-(row["total"] or 0))
        for start, end in edges:
            rows = ledger_rows(usage, start, end)
            for row in _grouped(rows, ledger_groups, total=Sum("quantity")):
                partial_for(row).add(total=row["total"])
            effective = _effective(rows, usage.organization_id)
            for row in _grouped(
                effective, ledger_groups, count=Count("id"), maximum=Max("quantity")
            ):
                partial_for(row).add(count=row["count"], maximum=row["maximum"])
            if aggregation == Meter.Aggregation.LAST:
                latest = effective.annotate(**ledger_groups).values(
                    *ledger_groups, "occurred_at", "id", "quantity"
                )
                for row in latest:
                    partial_for(row).add(last=(row["occurred_at"], row["id"], row["quantity"]))

    if not groups and not partials:
        partials[()] = _Partial()
    results = []
    for key in sorted(partials, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        partial = partials[key]
        result = dict(zip(groups, key, strict=True))
        result["quantity"] = _final_quantity(aggregation, partial)
        results.append(result)
    return results


def _final_quantity(aggregation: str, partial: _Partial) -> Decimal | None:
    if aggregation in (Meter.Aggregation.COUNT, Meter.Aggregation.SUM):
        return partial.total
    if aggregation == Meter.Aggregation.MAX:
        return partial.maximum
    if aggregation == Meter.Aggregation.LAST:
        return partial.last[2] if partial.last else None
    return Decimal(len(partial.values))


def display_quantity(meter: Meter, quantity: Decimal | None) -> Decimal | None:
    """Quantity in the customer-facing unit, rounded HALF_UP to 6 decimals."""
    if quantity is None:
        return None
    return (quantity * meter.display_factor).quantize(DISPLAY_QUANTUM, rounding=ROUND_HALF_UP)


def format_decimal(value: Decimal | None) -> str | None:
    """A plain decimal string without exponent or trailing zeros: "1500", "0.25"."""
    if value is None:
        return None
    normalised = value.normalize()
    text = format(normalised, "f")
    return "0" if text in ("-0", "") else text


def usage_export_rows(
    usage: UsageFilter,
    *,
    received_after: datetime | None = None,
    received_until: datetime | None = None,
) -> Iterator[tuple]:
    """Raw ledger rows for CSV, streamed with a server-side cursor (constant memory). The
    received bounds select what an invoice line billed (its evidence)."""
    rows = ledger_rows(usage, usage.start, usage.end).order_by("occurred_at", "id")
    if received_after is not None:
        rows = rows.filter(received_at__gt=received_after)
    if received_until is not None:
        rows = rows.filter(received_at__lte=received_until)
    return rows.values_list(
        "id",
        "event_id",
        "occurred_at",
        "received_at",
        "meter__code",
        "quantity",
        "environment",
        "project_id",
        "api_key_id",
        "endpoint",
        "request_id",
        "source",
        "reverses_id",
        "reason",
        "properties",
    ).iterator(chunk_size=5000)


def organization_get(organization_ref: str):
    """An org by slug or id, for operator requests that name a customer."""
    from portal.models import Organization

    organization = Organization.objects.filter(slug=organization_ref).first()
    if organization is None:
        organization = get_or_not_found(Organization.objects.all(), organization_ref, "customer")
    return organization
