"""Writes for metering: meters and ledger corrections (ingestion is billing/ingest/)."""

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from billing.models import (
    NO_ID,
    Meter,
    UsageCorrection,
    UsageEvent,
    UsageEventId,
    UsageRollup,
    UsageUniqueValue,
)
from common.errors import Conflict, InvalidInput, NotFound
from portal.audit import Actor, audit_record
from portal.models import Organization

METER_CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _text(value, *, field: str, max_length: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput("Must be a string.", field=field)
    value = value.strip()
    if required and not value:
        raise InvalidInput("This field is required.", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"At most {max_length} characters.", field=field)
    return value


def meter_create(
    *,
    actor: Actor,
    code: str,
    name: str,
    unit: str,
    aggregation: str,
    unique_property: str = "",
    display_unit: str = "",
    display_factor: Decimal | str | int | None = None,
) -> Meter:
    code = _text(code, field="code", max_length=64)
    if not METER_CODE_PATTERN.match(code):
        raise InvalidInput(
            "Use lowercase letters, digits and underscores, starting with a letter.",
            field="code",
            code="invalid_meter_code",
        )
    if aggregation not in Meter.Aggregation.values:
        raise InvalidInput(
            f"aggregation must be one of {', '.join(Meter.Aggregation.values)}.",
            field="aggregation",
        )
    unique_property = _text(
        unique_property, field="unique_property", max_length=100, required=False
    )
    if aggregation == Meter.Aggregation.UNIQUE_COUNT and not unique_property:
        raise InvalidInput("unique_count meters need a unique_property.", field="unique_property")
    if aggregation != Meter.Aggregation.UNIQUE_COUNT and unique_property:
        raise InvalidInput(
            "Only unique_count meters take a unique_property.", field="unique_property"
        )
    try:
        factor = Decimal(str(display_factor)) if display_factor is not None else Decimal(1)
    except InvalidOperation as error:
        raise InvalidInput(
            "display_factor must be a decimal number.", field="display_factor"
        ) from error
    if not factor.is_finite() or factor <= 0 or factor.as_tuple().exponent < -12:
        raise InvalidInput(
            "display_factor must be positive, with at most 12 decimals.", field="display_factor"
        )
    fields = {
        "code": code,
        "name": _text(name, field="name", max_length=200),
        "unit": _text(unit, field="unit", max_length=64),
        "aggregation": aggregation,
        "unique_property": unique_property,
        "display_unit": _text(display_unit, field="display_unit", max_length=64, required=False),
        "display_factor": factor,
    }
    try:
        with transaction.atomic():
            meter = Meter.objects.create(**fields)
            audit_record(
                actor=actor,
                action="meter.created",
                organization=None,
                target=meter,
                changes={**fields, "display_factor": str(factor)},
            )
    except IntegrityError as error:
        raise Conflict(
            f"A meter with code '{code}' exists.", code="meter_code_taken", field="code"
        ) from error
    return meter


def usage_correct(
    *, actor: Actor, organization: Organization, event_id: str, reason: str
) -> UsageCorrection:
    """Reverses one event with a reversal row; the original row stays as it was."""
    reason = _text(reason, field="reason", max_length=2000)
    with transaction.atomic():
        record = UsageEventId.objects.filter(organization=organization, event_id=event_id).first()
        original = None
        if record is not None:
            original = (
                UsageEvent.objects.filter(
                    organization=organization,
                    occurred_at=record.occurred_at,
                    event_id=event_id,
                    reverses__isnull=True,
                )
                .exclude(source=UsageEvent.Source.CORRECTION)
                .first()
            )
        if original is None:
            raise NotFound(
                f"No usage event '{event_id}' for this customer.", code="event_not_found"
            )
        reversal = UsageEvent.objects.create(
            organization_id=original.organization_id,
            project_id=original.project_id,
            api_key_id=original.api_key_id,
            meter_id=original.meter_id,
            environment=original.environment,
            event_id=original.event_id,
            quantity=-original.quantity,
            occurred_at=original.occurred_at,
            received_at=timezone.now(),
            properties=original.properties,
            endpoint=original.endpoint,
            request_id=actor.request_id[:128],
            source=UsageEvent.Source.CORRECTION,
            reverses_id=original.id,
            reason=reason,
        )
        try:
            with transaction.atomic():
                correction = UsageCorrection.objects.create(
                    organization=organization,
                    original_ledger_id=original.id,
                    reversal_ledger_id=reversal.id,
                    event_id=event_id,
                    reason=reason,
                )
        except IntegrityError as error:
            raise Conflict(
                f"Usage event '{event_id}' was already corrected.", code="already_corrected"
            ) from error
        rollup_rebuild_bucket(original)
        audit_record(
            actor=actor,
            action="usage.corrected",
            organization=organization,
            target=correction,
            changes={
                "event_id": event_id,
                "meter": original.meter_id and str(original.meter_id),
                "quantity": str(original.quantity),
                "occurred_at": original.occurred_at.isoformat(),
                "reason": reason,
            },
        )
    return correction


def rollup_rebuild_bucket(event: UsageEvent) -> None:
    """Recomputes the hourly bucket of `event` from the ledger's effective rows.

    Reversals cannot be subtracted from a max, a last value or a set of unique values, so the
    bucket is rebuilt exactly. The rollup row is locked first: concurrent ingestion into the
    same bucket waits, and the ledger read below sees everything committed before it.
    """
    hour = event.occurred_at.replace(minute=0, second=0, microsecond=0)
    bucket = {
        "organization_id": event.organization_id,
        "meter_id": event.meter_id,
        "environment": event.environment,
        "hour": hour,
        "project_id": event.project_id or NO_ID,
        "api_key_id": event.api_key_id or NO_ID,
        "endpoint": event.endpoint,
    }
    rollup = UsageRollup.objects.select_for_update().filter(**bucket).first()
    reversed_ids = UsageCorrection.objects.filter(organization_id=event.organization_id).values(
        "original_ledger_id"
    )
    effective = (
        UsageEvent.objects.filter(
            organization_id=event.organization_id,
            meter_id=event.meter_id,
            environment=event.environment,
            occurred_at__gte=hour,
            occurred_at__lt=hour + timedelta(hours=1),
            project_id=event.project_id,
            api_key_id=event.api_key_id,
            endpoint=event.endpoint,
            reverses__isnull=True,
        )
        .exclude(source=UsageEvent.Source.CORRECTION)
        .exclude(id__in=reversed_ids)
    )
    totals = effective.aggregate(count=Count("id"), total=Sum("quantity"), maximum=Max("quantity"))
    last = (
        effective.order_by("-occurred_at", "-id")
        .values_list("quantity", "occurred_at", "id")
        .first()
    )
    values = {
        "event_count": totals["count"],
        "quantity_sum": totals["total"] or Decimal(0),
        "quantity_max": totals["maximum"],
        "last_quantity": last[0] if last else None,
        "last_at": last[1] if last else None,
        "last_ledger_id": last[2] if last else None,
    }
    if rollup is None:
        UsageRollup.objects.create(**bucket, **values)
    else:
        UsageRollup.objects.filter(pk=rollup.pk).update(**values)

    meter = Meter.objects.get(pk=event.meter_id)
    if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
        UsageUniqueValue.objects.filter(**bucket).delete()
        distinct = {
            str(properties.get(meter.unique_property))[:255]
            for properties in effective.values_list("properties", flat=True)
            if isinstance(properties, dict) and properties.get(meter.unique_property) is not None
        }
        UsageUniqueValue.objects.bulk_create(
            [UsageUniqueValue(**bucket, value=value) for value in sorted(distinct)]
        )
