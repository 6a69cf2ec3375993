"""The ingestion hot path: validate a batch of usage events, dedupe, append, roll up.

One batch is one transaction: the dedupe records, the ledger rows, the hourly rollups and
the unique values commit together, so a usage query right after the 202 sees the events,
and a crash leaves nothing half-counted. Each statement covers the whole batch (multi-row
VALUES) and rows are written in a fixed order so concurrent batches cannot deadlock.
"""

import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.models import NO_ID, QUANTITY_DECIMALS, Meter, UsageEvent
from keys.format import key_hash, key_is_well_formed
from keys.models import ApiKey
from portal.models import Organization, Project

MAX_BATCH = 1000
MAX_ID_LENGTH = 255
MAX_QUANTITY = Decimal(10) ** (38 - QUANTITY_DECIMALS) - 1
FUTURE_TOLERANCE = timedelta(minutes=5)
ENVIRONMENTS = ("live", "test")


@dataclass
class Rejection:
    index: int
    code: str
    detail: str


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(slots=True)
class _Row:
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


class _Reject(Exception):
    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail


def _late_window() -> timedelta:
    return timedelta(days=settings.USAGE_LATE_ARRIVAL_DAYS)


def _parse_quantity(raw: Any, meter: Meter) -> Decimal:
    if raw is None:
        if meter.aggregation in (Meter.Aggregation.COUNT, Meter.Aggregation.UNIQUE_COUNT):
            return Decimal(1)
        raise _Reject(
            "missing_quantity", f"Meter '{meter.code}' ({meter.aggregation}) needs a quantity."
        )
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise _Reject("invalid_quantity", "quantity must be a decimal string or a number.")
    try:
        quantity = Decimal(raw) if not isinstance(raw, float) else Decimal(repr(raw))
    except (InvalidOperation, ValueError):
        raise _Reject("invalid_quantity", f"'{raw}' is not a decimal number.") from None
    if not quantity.is_finite():
        raise _Reject("invalid_quantity", "quantity must be finite.")
    if quantity < 0:
        raise _Reject("negative_quantity", "quantity must not be negative.")
    if quantity > MAX_QUANTITY:
        raise _Reject("invalid_quantity", "quantity is too large.")
    if quantity.as_tuple().exponent < -QUANTITY_DECIMALS:
        raise _Reject("invalid_quantity", f"quantity has more than {QUANTITY_DECIMALS} decimals.")
    if meter.aggregation == Meter.Aggregation.COUNT and quantity != quantity.to_integral_value():
        raise _Reject("invalid_quantity", "A count meter takes whole quantities.")
    return quantity


def _parse_timestamp(raw: Any, now: datetime) -> datetime:
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise _Reject("invalid_timestamp", "timestamp must be an ISO 8601 string.")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise _Reject("invalid_timestamp", f"'{raw[:64]}' is not an ISO 8601 time.") from None
    if parsed.tzinfo is None:
        raise _Reject("invalid_timestamp", "timestamp needs a time zone (UTC: ...Z).")
    parsed = parsed.astimezone(UTC)
    if parsed > now + FUTURE_TOLERANCE:
        raise _Reject("timestamp_in_future", "timestamp is more than 5 minutes in the future.")
    if parsed < now - _late_window():
        raise _Reject(
            "timestamp_too_old",
            f"timestamp is older than the late-arrival window "
            f"({settings.USAGE_LATE_ARRIVAL_DAYS} days).",
        )
    return parsed


class _Lookups:
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


def _validate(event: Any, lookups: _Lookups, now: datetime) -> _Row:
    if not isinstance(event, dict):
        raise _Reject("invalid_event", "Each event must be a JSON object.")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise _Reject("missing_id", "Each event needs an 'id' (its idempotency key), a string.")
    if len(event_id) > MAX_ID_LENGTH:
        raise _Reject("invalid_id", f"'id' is longer than {MAX_ID_LENGTH} characters.")

    meter = lookups.meters.get(event.get("meter")) if isinstance(event.get("meter"), str) else None
    if meter is None:
        raise _Reject("unknown_meter", f"No meter with code '{event.get('meter')}'.")

    key = None
    if event.get("api_key") is not None:
        raw = event["api_key"]
        if not isinstance(raw, str) or not key_is_well_formed(raw):
            raise _Reject("invalid_api_key", "api_key is not a well-formed Tollgate key.")
        key = lookups.keys_by_raw.get(raw)
        if key is None:
            raise _Reject("unknown_api_key", "No such API key.")
    elif event.get("key_id") is not None:
        key = lookups.keys_by_id.get(str(event["key_id"]))
        if key is None:
            raise _Reject("unknown_api_key", f"No API key with id '{event['key_id']}'.")

    customer_ref = event.get("customer")
    organization_id = None
    if customer_ref is not None:
        organization_id = lookups.customers.get(str(customer_ref))
        if organization_id is None:
            raise _Reject("unknown_customer", f"No customer '{customer_ref}'.")
    if key is not None:
        if organization_id is not None and organization_id != key[1]:
            raise _Reject("customer_mismatch", "The API key belongs to another customer.")
        organization_id = key[1]
    if organization_id is None:
        raise _Reject("missing_customer", "Give 'customer' (org slug or id) or an API key.")

    project_id = key[2] if key is not None else None
    if event.get("project") is not None:
        try:
            given = uuid.UUID(str(event["project"]))
        except ValueError:
            raise _Reject("unknown_project", f"No project '{event['project']}'.") from None
        if lookups.projects.get(given) != organization_id:
            raise _Reject("unknown_project", f"No project '{given}' for this customer.")
        if project_id is not None and project_id != given:
            raise _Reject("project_mismatch", "The API key belongs to another project.")
        project_id = given

    environment = event.get("environment")
    if environment is not None and environment not in ENVIRONMENTS:
        raise _Reject("invalid_environment", "environment must be 'live' or 'test'.")
    if key is not None:
        if environment is not None and environment != key[3]:
            raise _Reject("environment_mismatch", f"The API key is a {key[3]} key.")
        environment = key[3]
    environment = environment or "live"

    properties = event.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise _Reject("invalid_properties", "properties must be a JSON object.")
    unique_value = None
    if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
        value = properties.get(meter.unique_property)
        if value is None or isinstance(value, dict | list) or str(value) == "":
            raise _Reject(
                "missing_unique_property",
                f"Meter '{meter.code}' counts distinct properties.{meter.unique_property}.",
            )
        unique_value = str(value)[:255]

    endpoint = event.get("endpoint") or ""
    request_id = event.get("request_id") or ""
    if not isinstance(endpoint, str) or len(endpoint) > 255:
        raise _Reject("invalid_endpoint", "endpoint must be a string of at most 255 characters.")
    if not isinstance(request_id, str) or len(request_id) > 128:
        raise _Reject(
            "invalid_request_id", "request_id must be a string of at most 128 characters."
        )

    return _Row(
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


def usage_ingest(*, events: list, source: str = UsageEvent.Source.API) -> IngestResult:
    """Validates, dedupes and records a batch; valid events are stored even if others fail."""
    now = timezone.now()
    result = IngestResult()
    lookups = _Lookups(events)
    rows: list[_Row] = []
    seen: set[tuple] = set()
    for index, event in enumerate(events):
        try:
            row = _validate(event, lookups, now)
        except _Reject as rejection:
            result.rejected.append(Rejection(index, rejection.code, rejection.detail))
            continue
        identity = (row.organization_id, row.event_id)
        if identity in seen:
            result.duplicates += 1  # repeated inside this batch: counted once
            continue
        seen.add(identity)
        rows.append(row)
    if rows:
        stored = _store(rows, received_at=now, source=source)
        result.accepted = stored
        result.duplicates += len(rows) - stored
    return result


class DbValues:
    """Python values as the raw cursor of this database wants them.

    PostgreSQL takes UUID, Decimal and aware datetimes as they are; SQLite (the embedded
    default) stores them the way Django's fields do, so ORM reads see the same values.
    """

    def __init__(self, conn) -> None:
        ops = conn.ops
        if conn.vendor == "postgresql":
            self.uuid = self.datetime = self.decimal = _identity
        else:
            self.uuid = _uuid_hex
            self.datetime = ops.adapt_datetimefield_value
            self.decimal = lambda value: ops.adapt_decimalfield_value(value, 38, QUANTITY_DECIMALS)
        self.json = lambda value: ops.adapt_json_value(value, None)


def _identity(value):
    return value


def _uuid_hex(value):
    return None if value is None else value.hex


def _values_sql(columns: int, rows: int) -> str:
    one = "(" + ", ".join(["%s"] * columns) + ")"
    return ", ".join([one] * rows)


def _store(rows: list[_Row], *, received_at: datetime, source: str) -> int:
    """Writes one batch; returns how many events were new."""
    if connection.vendor == "postgresql" and not PORTABLE_SQL_ONLY:
        return _store_postgresql(rows, received_at=received_at, source=source)
    return _store_portable(rows, received_at=received_at, source=source)


# Tests set this to run the portable path on PostgreSQL too, proving both paths agree.
PORTABLE_SQL_ONLY = False

_POSTGRESQL_STORE = f"""
WITH input AS (
    SELECT * FROM unnest(
        %(organization)s::uuid[], %(project)s::uuid[], %(api_key)s::uuid[], %(meter)s::uuid[],
        %(environment)s::text[], %(event_id)s::text[], %(quantity)s::numeric[],
        %(occurred_at)s::timestamptz[], %(properties)s::text[], %(endpoint)s::text[],
        %(request_id)s::text[], %(unique_value)s::text[]
    ) AS t(organization_id, project_id, api_key_id, meter_id, environment, event_id,
           quantity, occurred_at, properties, endpoint, request_id, unique_value)
),
claimed AS (
    INSERT INTO billing_usageeventid (organization_id, event_id, occurred_at, received_at)
    SELECT organization_id, event_id, occurred_at, %(received_at)s FROM input
    ORDER BY organization_id, event_id
    ON CONFLICT DO NOTHING
    RETURNING organization_id, event_id
),
ledger AS (
    INSERT INTO billing_usageevent (organization_id, project_id, api_key_id, meter_id,
        environment, event_id, quantity, occurred_at, received_at, properties, endpoint,
        request_id, source, reason)
    SELECT i.organization_id, i.project_id, i.api_key_id, i.meter_id, i.environment,
           i.event_id, i.quantity, i.occurred_at, %(received_at)s, i.properties::jsonb,
           i.endpoint, i.request_id, %(source)s, ''
    FROM input i JOIN claimed c USING (organization_id, event_id)
    RETURNING id, organization_id, event_id, meter_id, environment, occurred_at,
              coalesce(project_id, '{NO_ID}') AS project_id,
              coalesce(api_key_id, '{NO_ID}') AS api_key_id, endpoint, quantity
),
uniques AS (
    INSERT INTO billing_usageuniquevalue (organization_id, meter_id, environment, hour,
        project_id, api_key_id, endpoint, value)
    SELECT DISTINCT l.organization_id, l.meter_id, l.environment,
           date_trunc('hour', l.occurred_at, 'UTC'), l.project_id, l.api_key_id, l.endpoint,
           i.unique_value
    FROM ledger l JOIN input i USING (organization_id, event_id)
    WHERE i.unique_value IS NOT NULL
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT DO NOTHING
),
rolled AS (
    INSERT INTO billing_usagerollup AS r (organization_id, meter_id, environment, hour,
        project_id, api_key_id, endpoint, event_count, quantity_sum, quantity_max,
        last_quantity, last_at, last_ledger_id)
    SELECT organization_id, meter_id, environment, date_trunc('hour', occurred_at, 'UTC'),
           project_id, api_key_id, endpoint, count(*), sum(quantity), max(quantity),
           (array_agg(quantity ORDER BY occurred_at DESC, id DESC))[1], max(occurred_at),
           (array_agg(id ORDER BY occurred_at DESC, id DESC))[1]
    FROM ledger
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (organization_id, meter_id, environment, hour, project_id, api_key_id, endpoint)
    DO UPDATE SET
        event_count = r.event_count + excluded.event_count,
        quantity_sum = r.quantity_sum + excluded.quantity_sum,
        quantity_max = GREATEST(r.quantity_max, excluded.quantity_max),
        last_quantity = CASE WHEN r.last_at IS NULL
            OR (excluded.last_at, excluded.last_ledger_id) > (r.last_at, r.last_ledger_id)
            THEN excluded.last_quantity ELSE r.last_quantity END,
        last_ledger_id = CASE WHEN r.last_at IS NULL
            OR (excluded.last_at, excluded.last_ledger_id) > (r.last_at, r.last_ledger_id)
            THEN excluded.last_ledger_id ELSE r.last_ledger_id END,
        last_at = GREATEST(r.last_at, excluded.last_at)
)
SELECT count(*) FROM ledger
"""


def _store_postgresql(rows: list[_Row], *, received_at: datetime, source: str) -> int:
    """The whole batch in one statement (one round trip): claim ids, append, roll up."""
    params = {
        "organization": [row.organization_id for row in rows],
        "project": [row.project_id for row in rows],
        "api_key": [row.api_key_id for row in rows],
        "meter": [row.meter.id for row in rows],
        "environment": [row.environment for row in rows],
        "event_id": [row.event_id for row in rows],
        "quantity": [row.quantity for row in rows],
        "occurred_at": [row.occurred_at for row in rows],
        "properties": [json.dumps(row.properties) for row in rows],
        "endpoint": [row.endpoint for row in rows],
        "request_id": [row.request_id for row in rows],
        "unique_value": [row.unique_value for row in rows],
        "received_at": received_at,
        "source": source,
    }
    with transaction.atomic():
        connection.ensure_connection()
        # A server-side-binding cursor sends the arrays in binary: no 14,000-literal query
        # string to build and parse (Django's own cursors bind on the client).
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_POSTGRESQL_STORE, params)
            return cursor.fetchone()[0]


def _store_portable(rows: list[_Row], *, received_at: datetime, source: str) -> int:
    """Any database with INSERT ... ON CONFLICT ... RETURNING (SQLite 3.35+, PostgreSQL)."""
    rows.sort(key=lambda row: (str(row.organization_id), row.event_id))
    db = DbValues(connection)
    with transaction.atomic(), connection.cursor() as cursor:
        fresh = _claim_event_ids(cursor, db, rows, received_at)
        new_rows = [row for row in rows if (row.organization_id, row.event_id) in fresh]
        if not new_rows:
            return 0
        ledger_ids = _append_to_ledger(cursor, db, new_rows, received_at, source)
        apply_to_rollups(cursor, db, new_rows, ledger_ids)
    return len(new_rows)


def _claim_event_ids(cursor, db: DbValues, rows: list[_Row], received_at: datetime) -> set:
    params: list = []
    received = db.datetime(received_at)
    for row in rows:
        params += [
            db.uuid(row.organization_id),
            row.event_id,
            db.datetime(row.occurred_at),
            received,
        ]
    cursor.execute(
        "INSERT INTO billing_usageeventid (organization_id, event_id, occurred_at, received_at) "
        f"VALUES {_values_sql(4, len(rows))} "
        "ON CONFLICT DO NOTHING RETURNING organization_id, event_id",
        params,
    )
    return {(_as_uuid(org), event_id) for org, event_id in cursor.fetchall()}


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


LEDGER_COLUMNS = (
    "organization_id",
    "project_id",
    "api_key_id",
    "meter_id",
    "environment",
    "event_id",
    "quantity",
    "occurred_at",
    "received_at",
    "properties",
    "endpoint",
    "request_id",
    "source",
    "reason",
)


def _append_to_ledger(
    cursor, db: DbValues, rows: list[_Row], received_at: datetime, source: str
) -> dict:
    """Returns {(organization_id, event_id): ledger id}."""
    received = db.datetime(received_at)
    params: list = []
    for row in rows:
        params += [
            db.uuid(row.organization_id),
            db.uuid(row.project_id),
            db.uuid(row.api_key_id),
            db.uuid(row.meter.id),
            row.environment,
            row.event_id,
            db.decimal(row.quantity),
            db.datetime(row.occurred_at),
            received,
            db.json(row.properties),
            row.endpoint,
            row.request_id,
            source,
            "",
        ]
    cursor.execute(
        f"INSERT INTO billing_usageevent ({', '.join(LEDGER_COLUMNS)}) "
        f"VALUES {_values_sql(len(LEDGER_COLUMNS), len(rows))} "
        "RETURNING id, organization_id, event_id",
        params,
    )
    return {(_as_uuid(org), event_id): ledger_id for ledger_id, org, event_id in cursor.fetchall()}


def _bucket(row) -> tuple:
    return (
        row.organization_id,
        row.meter.id,
        row.environment,
        row.occurred_at.replace(minute=0, second=0, microsecond=0),
        row.project_id or NO_ID,
        row.api_key_id or NO_ID,
        row.endpoint,
    )


def apply_to_rollups(cursor, db: DbValues, rows: list[_Row], ledger_ids: dict) -> None:
    """Adds new ledger rows to their hourly buckets (not for reversals: see rollup_rebuild)."""
    buckets: dict[tuple, list] = {}
    unique_values: set[tuple] = set()
    for row in rows:
        key = _bucket(row)
        ledger_id = ledger_ids[(row.organization_id, row.event_id)]
        agg = buckets.get(key)
        if agg is None:
            buckets[key] = [1, row.quantity, row.quantity, row.quantity, row.occurred_at, ledger_id]
        else:
            agg[0] += 1
            agg[1] += row.quantity
            if row.quantity > agg[2]:
                agg[2] = row.quantity
            if (row.occurred_at, ledger_id) > (agg[4], agg[5]):
                agg[3], agg[4], agg[5] = row.quantity, row.occurred_at, ledger_id
        if row.unique_value is not None:
            unique_values.add((*key, row.unique_value))

    params: list = []
    for key in sorted(buckets, key=_sort_key):
        count, total, maximum, last, last_at, last_id = buckets[key]
        params += [
            *_db_bucket(db, key),
            count,
            db.decimal(total),
            db.decimal(maximum),
            db.decimal(last),
            db.datetime(last_at),
            last_id,
        ]
    cursor.execute(
        "INSERT INTO billing_usagerollup (organization_id, meter_id, environment, hour, "
        "project_id, api_key_id, endpoint, event_count, quantity_sum, quantity_max, "
        "last_quantity, last_at, last_ledger_id) "
        f"VALUES {_values_sql(13, len(buckets))} "
        "ON CONFLICT (organization_id, meter_id, environment, hour, project_id, api_key_id, "
        "endpoint) DO UPDATE SET "
        "event_count = billing_usagerollup.event_count + excluded.event_count, "
        "quantity_sum = billing_usagerollup.quantity_sum + excluded.quantity_sum, "
        "quantity_max = CASE WHEN billing_usagerollup.quantity_max IS NULL "
        "  OR excluded.quantity_max > billing_usagerollup.quantity_max "
        "  THEN excluded.quantity_max ELSE billing_usagerollup.quantity_max END, "
        "last_quantity = CASE WHEN billing_usagerollup.last_at IS NULL "
        "  OR excluded.last_at > billing_usagerollup.last_at "
        "  OR (excluded.last_at = billing_usagerollup.last_at "
        "      AND excluded.last_ledger_id > billing_usagerollup.last_ledger_id) "
        "  THEN excluded.last_quantity ELSE billing_usagerollup.last_quantity END, "
        "last_ledger_id = CASE WHEN billing_usagerollup.last_at IS NULL "
        "  OR excluded.last_at > billing_usagerollup.last_at "
        "  OR (excluded.last_at = billing_usagerollup.last_at "
        "      AND excluded.last_ledger_id > billing_usagerollup.last_ledger_id) "
        "  THEN excluded.last_ledger_id ELSE billing_usagerollup.last_ledger_id END, "
        "last_at = CASE WHEN billing_usagerollup.last_at IS NULL "
        "  OR excluded.last_at > billing_usagerollup.last_at "
        "  THEN excluded.last_at ELSE billing_usagerollup.last_at END",
        params,
    )
    if unique_values:
        params = []
        for value in sorted(unique_values, key=_sort_key):
            params += [*_db_bucket(db, value[:7]), value[7]]
        cursor.execute(
            "INSERT INTO billing_usageuniquevalue (organization_id, meter_id, environment, hour, "
            "project_id, api_key_id, endpoint, value) "
            f"VALUES {_values_sql(8, len(unique_values))} "
            "ON CONFLICT DO NOTHING",
            params,
        )


def _db_bucket(db: DbValues, key: tuple) -> list:
    organization_id, meter_id, environment, hour, project_id, api_key_id, endpoint = key
    return [
        db.uuid(organization_id),
        db.uuid(meter_id),
        environment,
        db.datetime(hour),
        db.uuid(project_id),
        db.uuid(api_key_id),
        endpoint,
    ]


def _sort_key(bucket: tuple) -> tuple:
    return tuple(str(part) for part in bucket)
