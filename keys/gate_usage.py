"""Metering of allowed calls: written ahead to Redis streams, drained into the ledger.

Each organization has its own stream, tagged like its rate-limit keys, so the gate's
decision script appends the call's usage in the same round trip (and the same Redis
Cluster slot). Streams are listed in a registry set the first time a process writes to
one. A Celery task (beat, every few seconds) reads each stream in batches through a
consumer group and ingests them with the gate's request id as the event id. An entry is
acknowledged only after its batch is in the ledger, so a worker killed mid-batch leaves it
pending and another worker claims it; re-ingesting is harmless as event ids are deduped.
"""

import json
import socket
from datetime import datetime

import redis

REGISTRY_KEY = "tg:gate:usage-streams"
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
    api: str = "",
    app: str | None = None,
) -> list[dict]:
    """The usage events of one allowed call: `requests`, and the endpoint's own meter.

    `api` ("documents/v1") rides in the properties: the endpoint label alone does not say
    which product or version was called when two share a method and path. `app` is the
    marketplace app whose token made the call (its key says so too; the property keeps the
    attribution readable in exports without a join)."""
    base = {
        "key_id": key_id,
        "environment": environment,
        "endpoint": endpoint_label[:255],
        "request_id": request_id[:128],
        "timestamp": at.isoformat(),
    }
    properties = {}
    if api:
        properties["api"] = api
    if app:
        properties["app"] = app
    if properties:
        base["properties"] = properties
    events = [{"id": request_id, "meter": "requests", "quantity": cost, **base}]
    if meter_code and meter_code != "requests":
        events.append(
            {"id": f"{request_id}:{meter_code}", "meter": meter_code, "quantity": cost, **base}
        )
    return events


def stream_key(organization_id) -> str:
    return f"tg:gate:usage:{{{organization_id}}}"


_registered: set[str] = set()


def ensure_registered(client: redis.Redis, organization_id) -> str:
    """The org's stream key, added to the registry once per process."""
    key = stream_key(organization_id)
    if key not in _registered:
        client.sadd(REGISTRY_KEY, key)
        _registered.add(key)
    return key


def record_call(client: redis.Redis, organization_id, events: list[dict]) -> None:
    """For a call that no decision script wrote (a plan without limits or quotas)."""
    client.xadd(ensure_registered(client, organization_id), {"events": json.dumps(events)})


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


def _ensure_group(client: redis.Redis, key: str) -> None:
    try:
        client.xgroup_create(key, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def drain(client: redis.Redis, ingest, *, consumer: str | None = None) -> int:
    """Moves pending calls of every org's stream into the ledger with `ingest(events)`;
    returns how many stream entries it moved."""
    consumer = consumer or socket.gethostname()
    return sum(
        _drain_stream(client, key.decode() if isinstance(key, bytes) else key, ingest, consumer)
        for key in client.smembers(REGISTRY_KEY)
    )


def _drain_stream(client: redis.Redis, key: str, ingest, consumer: str) -> int:
    _ensure_group(client, key)
    moved = 0
    # Entries a dead worker read but never acknowledged come back after CLAIM_IDLE_MS.
    _cursor, claimed, *_ = client.xautoclaim(key, GROUP, consumer, CLAIM_IDLE_MS, count=BATCH)
    batches = [claimed] if claimed else []
    while True:
        for entries in batches:
            if not entries:
                continue
            events = [event for _id, fields in entries for event in json.loads(fields[b"events"])]
            for start in range(0, len(events), BATCH):
                ingest(events[start : start + BATCH])
            ids = [entry_id for entry_id, _fields in entries]
            client.xack(key, GROUP, *ids)
            client.xdel(key, *ids)
            moved += len(ids)
        reply = client.xreadgroup(GROUP, consumer, {key: ">"}, count=BATCH)
        if not reply or not reply[0][1]:
            return moved
        batches = [reply[0][1]]
