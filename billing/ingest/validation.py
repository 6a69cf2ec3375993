"""Checking one usage event against what its batch refers to; rejections carry a code."""

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from billing.models import QUANTITY_DECIMALS, Meter
from keys.format import key_hash, key_is_well_formed
from keys.models import ApiKey
from portal.models import Organization, Project

MAX_BATCH = 1000
MAX_ID_LENGTH = 255
MAX_QUANTITY = Decimal(10) ** (38 - QUANTITY_DECIMALS) - 1
FUTURE_TOLERANCE = timedelta(minutes=5)
ENVIRONMENTS = ("live", "test")


@dataclass(slots=True)
class EventRow:
    """A validated event, ready for the ledger."""

    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    meter: Meter
    environment: str
    event_id: str
    quantity: Decimal
    occurred_at: datetime
    properties: dict
    endpoint: str
    request_id: str
    unique_value: str | None


class Rejected(Exception):
    """Why one event of a batch cannot be stored (the others still are)."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail


def _late_window() -> timedelta:
    return timedelta(days=settings.USAGE_LATE_ARRIVAL_DAYS)


def _parse_quantity(raw: Any, meter: Meter) -> Decimal:
    if raw is None:
        if meter.aggregation in (Meter.Aggregation.COUNT, Meter.Aggregation.UNIQUE_COUNT):
            return Decimal(1)
        raise Rejected(
            "missing_quantity", f"Meter '{meter.code}' ({meter.aggregation}) needs a quantity."
        )
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise Rejected("invalid_quantity", "quantity must be a decimal string or a number.")
    try:
        quantity = Decimal(raw) if not isinstance(raw, float) else Decimal(repr(raw))
    except (InvalidOperation, ValueError):
        raise Rejected("invalid_quantity", f"'{raw}' is not a decimal number.") from None
    if not quantity.is_finite():
        raise Rejected("invalid_quantity", "quantity must be finite.")
    if quantity < 0:
        raise Rejected("negative_quantity", "quantity must not be negative.")
    if quantity > MAX_QUANTITY:
        raise Rejected("invalid_quantity", "quantity is too large.")
    if quantity.as_tuple().exponent < -QUANTITY_DECIMALS:
        raise Rejected("invalid_quantity", f"quantity has more than {QUANTITY_DECIMALS} decimals.")
    if meter.aggregation == Meter.Aggregation.COUNT and quantity != quantity.to_integral_value():
        raise Rejected("invalid_quantity", "A count meter takes whole quantities.")
    return quantity


def _parse_timestamp(raw: Any, now: datetime) -> datetime:
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise Rejected("invalid_timestamp", "timestamp must be an ISO 8601 string.")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise Rejected("invalid_timestamp", f"'{raw[:64]}' is not an ISO 8601 time.") from None
    if parsed.tzinfo is None:
        raise Rejected("invalid_timestamp", "timestamp needs a time zone (UTC: ...Z).")
    parsed = parsed.astimezone(UTC)
    if parsed > now + FUTURE_TOLERANCE:
        raise Rejected("timestamp_in_future", "timestamp is more than 5 minutes in the future.")
    if parsed < now - _late_window():
        raise Rejected(
            "timestamp_too_old",
            f"timestamp is older than the late-arrival window "
            f"({settings.USAGE_LATE_ARRIVAL_DAYS} days).",
        )
    return parsed


class BatchLookups:
    """Everything a batch refers to, fetched with one query per kind, not per event."""

    def __init__(self, events: list):
        dicts = [event for event in events if isinstance(event, dict)]
        self.meters = {meter.code: meter for meter in Meter.objects.all()}
        customer_refs = {str(e["customer"]) for e in dicts if isinstance(e.get("customer"), str)}
        uuids, slugs = set(), set()
        for ref in customer_refs:
            try:
                uuids.add(uuid.UUID(ref))
            except ValueError:
                slugs.add(ref)
        self.customers: dict[str, uuid.UUID] = {}
        for org_id in Organization.objects.filter(id__in=uuids).values_list("id", flat=True):
            self.customers[str(org_id)] = org_id
        for org_id, slug in Organization.objects.filter(slug__in=slugs).values_list("id", "slug"):
            self.customers[slug] = org_id

        raw_keys = {e["api_key"] for e in dicts if isinstance(e.get("api_key"), str)}
        key_ids = set()
        for e in dicts:
            key_id = e.get("key_id")
            if isinstance(key_id, str):
                with contextlib.suppress(ValueError):
                    key_ids.add(uuid.UUID(key_id))
        hashes = {key_hash(raw): raw for raw in raw_keys if key_is_well_formed(raw)}
        self.keys_by_raw: dict[str, tuple] = {}
        self.keys_by_id: dict[str, tuple] = {}
        fields = ("id", "organization_id", "project_id", "environment", "key_hash")
        for row in ApiKey.objects.filter(key_hash__in=hashes).values_list(*fields):
            self.keys_by_raw[hashes[row[4]]] = row[:4]
        for row in ApiKey.objects.filter(id__in=key_ids).values_list(*fields):
            self.keys_by_id[str(row[0])] = row[:4]

        project_ids = set()
        for e in dicts:
            if isinstance(e.get("project"), str):
                with contextlib.suppress(ValueError):
                    project_ids.add(uuid.UUID(e["project"]))
        self.projects = dict(
            Project.objects.filter(id__in=project_ids).values_list("id", "organization_id")
        )


def validate_event(event: Any, lookups: BatchLookups, now: datetime) -> EventRow:
    if not isinstance(event, dict):
        raise Rejected("invalid_event", "Each event must be a JSON object.")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise Rejected("missing_id", "Each event needs an 'id' (its idempotency key), a string.")
    if len(event_id) > MAX_ID_LENGTH:
        raise Rejected("invalid_id", f"'id' is longer than {MAX_ID_LENGTH} characters.")

    meter = lookups.meters.get(event.get("meter")) if isinstance(event.get("meter"), str) else None
    if meter is None:
        raise Rejected("unknown_meter", f"No meter with code '{event.get('meter')}'.")

    key = None
    if event.get("api_key") is not None:
        raw = event["api_key"]
        if not isinstance(raw, str) or not key_is_well_formed(raw):
            raise Rejected("invalid_api_key", "api_key is not a well-formed Tollgate key.")
        key = lookups.keys_by_raw.get(raw)
        if key is None:
            raise Rejected("unknown_api_key", "No such API key.")
    elif event.get("key_id") is not None:
        key = lookups.keys_by_id.get(str(event["key_id"]))
        if key is None:
            raise Rejected("unknown_api_key", f"No API key with id '{event['key_id']}'.")

    customer_ref = event.get("customer")
    organization_id = None
    if customer_ref is not None:
        organization_id = lookups.customers.get(str(customer_ref))
        if organization_id is None:
            raise Rejected("unknown_customer", f"No customer '{customer_ref}'.")
    if key is not None:
        if organization_id is not None and organization_id != key[1]:
            raise Rejected("customer_mismatch", "The API key belongs to another customer.")
        organization_id = key[1]
    if organization_id is None:
        raise Rejected("missing_customer", "Give 'customer' (org slug or id) or an API key.")

    project_id = key[2] if key is not None else None
    if event.get("project") is not None:
        try:
            given = uuid.UUID(str(event["project"]))
        except ValueError:
            raise Rejected("unknown_project", f"No project '{event['project']}'.") from None
        if lookups.projects.get(given) != organization_id:
            raise Rejected("unknown_project", f"No project '{given}' for this customer.")
        if project_id is not None and project_id != given:
            raise Rejected("project_mismatch", "The API key belongs to another project.")
        project_id = given

    environment = event.get("environment")
    if environment is not None and environment not in ENVIRONMENTS:
        raise Rejected("invalid_environment", "environment must be 'live' or 'test'.")
    if key is not None:
        if environment is not None and environment != key[3]:
            raise Rejected("environment_mismatch", f"The API key is a {key[3]} key.")
        environment = key[3]
    environment = environment or "live"

    properties = event.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise Rejected("invalid_properties", "properties must be a JSON object.")
    unique_value = None
    if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
        value = properties.get(meter.unique_property)
        if value is None or isinstance(value, dict | list) or str(value) == "":
            raise Rejected(
                "missing_unique_property",
                f"Meter '{meter.code}' counts distinct properties.{meter.unique_property}.",
            )
        unique_value = str(value)[:255]

    endpoint = event.get("endpoint") or ""
    request_id = event.get("request_id") or ""
    if not isinstance(endpoint, str) or len(endpoint) > 255:
        raise Rejected("invalid_endpoint", "endpoint must be a string of at most 255 characters.")
    if not isinstance(request_id, str) or len(request_id) > 128:
        raise Rejected(
            "invalid_request_id", "request_id must be a string of at most 128 characters."
        )

    return EventRow(
        organization_id=organization_id,
        project_id=project_id,
        api_key_id=key[0] if key is not None else None,
        meter=meter,
        environment=environment,
        event_id=event_id,
        quantity=_parse_quantity(event.get("quantity"), meter),
        occurred_at=_parse_timestamp(event.get("timestamp"), now),
        properties=properties,
        endpoint=endpoint,
        request_id=request_id,
        unique_value=unique_value,
    )
