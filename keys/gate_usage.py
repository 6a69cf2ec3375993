"""Metering of allowed calls: written ahead to a Redis stream, drained into the ledger.

The gate answers after one XADD, never after a database write; a Celery task (beat, every
few seconds) reads the stream in batches through a consumer group and ingests them with
the gate's request id as the event id. An entry is acknowledged only after its batch is
in the ledger, so a worker killed mid-batch leaves it pending, and another worker claims
it; re-ingesting is harmless because event ids are deduplicated.
"""

import json
import socket
from datetime import datetime

import redis

STREAM_KEY = "tg:gate:usage"
GROUP = "ledger"
CROSSINGS_KEY = "tg:gate:quota-crossings"
CLAIM_IDLE_MS = 60_000
BATCH = 1000


def call_events(
    *,
    request_id: str,
    key_id: str,
    environment: str,
    endpoint_label: str,
    meter_code: str,
    cost: int,
    at: datetime,
) -> list[dict]:
    """The usage events of one allowed call: `requests`, and the endpoint's own meter."""
    base = {
        "key_id": key_id,
        "environment": environment,
        "endpoint": endpoint_label[:255],
        "request_id": request_id[:128],
        "timestamp": at.isoformat(),
    }
    events = [{"id": request_id, "meter": "requests", "quantity": cost, **base}]
    if meter_code and meter_code != "requests":
        events.append(
            {"id": f"{request_id}:{meter_code}", "meter": meter_code, "quantity": cost, **base}
        )
    return events


def record_call(client: redis.Redis, events: list[dict]) -> None:
    client.xadd(STREAM_KEY, {"events": json.dumps(events)})


def record_crossing(
    client: redis.Redis, *, organization_id: str, meter: str, period_start: datetime, limit: int
) -> None:
    """A soft quota crossed, once per threshold and period (billing turns it into alerts)."""
    flag = f"tg:quota-crossed:{{{organization_id}}}:{meter}:{int(period_start.timestamp())}:{limit}"
    if client.set(flag, 1, nx=True, ex=40 * 24 * 3600):
        client.xadd(
            CROSSINGS_KEY,
            {
                "organization": organization_id,
                "meter": meter,
                "period_start": period_start.isoformat(),
                "limit": str(limit),
            },
        )


def _ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def drain(client: redis.Redis, ingest, *, consumer: str | None = None) -> int:
    """Moves pending calls into the ledger with `ingest(events)`; returns how many entries."""
    consumer = consumer or socket.gethostname()
    _ensure_group(client)
    moved = 0
    # Entries a dead worker read but never acknowledged come back after CLAIM_IDLE_MS.
    _cursor, claimed, *_ = client.xautoclaim(
        STREAM_KEY, GROUP, consumer, CLAIM_IDLE_MS, count=BATCH
    )
    batches = [claimed] if claimed else []
    while True:
        for entries in batches:
            if not entries:
                continue
            events = [event for _id, fields in entries for event in json.loads(fields[b"events"])]
            for start in range(0, len(events), BATCH):
                ingest(events[start : start + BATCH])
            ids = [entry_id for entry_id, _fields in entries]
            client.xack(STREAM_KEY, GROUP, *ids)
            client.xdel(STREAM_KEY, *ids)
            moved += len(ids)
        reply = client.xreadgroup(GROUP, consumer, {STREAM_KEY: ">"}, count=BATCH)
        if not reply or not reply[0][1]:
            return moved
        batches = [reply[0][1]]
