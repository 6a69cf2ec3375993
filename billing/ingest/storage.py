"""Writing a validated batch: claim ids, append ledger rows, roll up, in one transaction.

On PostgreSQL the whole batch is one statement (one round trip, arrays bound in binary);
elsewhere (SQLite, the embedded default) a portable sequence of multi-row statements does
the same. Rows are written in a fixed order so concurrent batches cannot deadlock.
"""

import json
import uuid
from datetime import datetime

import psycopg
from django.db import connection, transaction

from billing.ingest.validation import EventRow
from billing.models import NO_ID, QUANTITY_DECIMALS


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


def store_batch(rows: list[EventRow], *, received_at: datetime, source: str) -> int:
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


def _store_postgresql(rows: list[EventRow], *, received_at: datetime, source: str) -> int:
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


def _store_portable(rows: list[EventRow], *, received_at: datetime, source: str) -> int:
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


def _claim_event_ids(cursor, db: DbValues, rows: list[EventRow], received_at: datetime) -> set:
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
    cursor, db: DbValues, rows: list[EventRow], received_at: datetime, source: str
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


def apply_to_rollups(cursor, db: DbValues, rows: list[EventRow], ledger_ids: dict) -> None:
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
