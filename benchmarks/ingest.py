"""Ingestion throughput through the HTTP API, and p95 of a 30-day usage query over 10M rows.

Part 1: gunicorn serves config.wsgi on PostgreSQL; client processes POST batches of 1,000
events to /api/v1/usage/events, half of each batch's ids repeated from an earlier batch, so
dedupe is exercised on every request. Reported: events/s offered (accepted + duplicates)
and accepted events/s.

Part 2: the ledger is filled with --rows events (default 10,000,000) spread over 30 days and
many keys, with rollups built from it exactly as ingestion maintains them; then GET
/api/v1/usage over the 30 days (total, and grouped by day) is timed sequentially.

Usage: python benchmarks/ingest.py [--seconds 20] [--clients 4] [--rows 10000000]
Targets (issue #3, 2-core machine): >= 25,000 events/s; usage query p95 < 100 ms.
"""

import argparse
import http.client
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (
    bench_env,
    gunicorn,
    manage,
    percentile,
    recreate_database,
    save,
)

DATABASE = "tollgate_bench_ingest"
# Published figures the issue names (not measured here): the bar to beat, for context.
PEER_REFERENCE = {
    "lago_events_per_s": "~10,000 (REST batch API, across a cluster)",
    "stripe_meter_events_per_s": "1,000 (v1 meter events API)",
}
BATCH = 1000


def _client(port: int, token: str, seconds: float, client_id: int, queue) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    offered = accepted = batches = 0
    latencies = []
    batch_number = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # Half new ids, half the ids of this client's previous batch: a retry storm.
        fresh = [f"c{client_id}-b{batch_number}-{i}" for i in range(BATCH // 2)]
        repeated = [f"c{client_id}-b{max(batch_number - 1, 0)}-{i}" for i in range(BATCH // 2)]
        if batch_number == 0:
            repeated = fresh
        events = [
            {
                "id": event_id,
                "meter": "requests",
                "customer": "bench",
                "endpoint": f"GET /v1/items/{i % 7}",
            }
            for i, event_id in enumerate(fresh + repeated)
        ]
        body = json.dumps({"events": events})
        started = time.perf_counter()
        connection.request("POST", "/api/v1/usage/events", body=body, headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
        latencies.append(time.perf_counter() - started)
        if response.status != 202:
            raise RuntimeError(f"unexpected {response.status}: {payload}")
        offered += BATCH
        accepted += payload["accepted"]
        batches += 1
        batch_number += 1
    queue.put((offered, accepted, batches, latencies))


def bench_ingest(env: dict, token: str, seconds: float, clients: int, workers: int) -> dict:
    with gunicorn(env, workers=workers) as port:
        queue = multiprocessing.Queue()
        processes = [
            multiprocessing.Process(target=_client, args=(port, token, seconds, n, queue))
            for n in range(clients)
        ]
        started = time.perf_counter()
        for process in processes:
            process.start()
        results = [queue.get() for _ in processes]
        elapsed = time.perf_counter() - started
        for process in processes:
            process.join()
    offered = sum(r[0] for r in results)
    accepted = sum(r[1] for r in results)
    latencies = [latency for r in results for latency in r[3]]
    return {
        "gunicorn_workers": workers,
        "clients": clients,
        "batch_size": BATCH,
        "duplicate_share": 0.5,
        "seconds": round(elapsed, 2),
        "events_offered_per_s": round(offered / elapsed),
        "events_accepted_per_s": round(accepted / elapsed),
        "batch_latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "batch_latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
    }


FILL_SQL = """
INSERT INTO billing_usageevent (organization_id, project_id, api_key_id, meter_id,
    environment, event_id, quantity, occurred_at, received_at, properties, endpoint,
    request_id, source, reason)
SELECT %(org)s, %(project)s, k.id, %(meter)s, 'live', 'fill-' || g,
       1, %(end)s - (g::bigint * %(spacing)s) * interval '1 microsecond', now(), '{}'::jsonb,
       'GET /v1/items/' || (g %% 7), '', 'api', ''
FROM generate_series(1, %(rows)s) AS g
JOIN LATERAL (SELECT id FROM unnest(%(keys)s::uuid[]) WITH ORDINALITY AS k(id, n)
              WHERE k.n = 1 + (g %% %(key_count)s)) AS k ON true
"""

ROLLUP_SQL = """
INSERT INTO billing_usagerollup (organization_id, meter_id, environment, hour, project_id,
    api_key_id, endpoint, event_count, quantity_sum, quantity_max, last_quantity, last_at,
    last_ledger_id)
SELECT organization_id, meter_id, environment, date_trunc('hour', occurred_at, 'UTC'),
       coalesce(project_id, %(no_id)s), coalesce(api_key_id, %(no_id)s), endpoint, count(*),
       sum(quantity), max(quantity),
       (array_agg(quantity ORDER BY occurred_at DESC, id DESC))[1], max(occurred_at), max(id)
FROM billing_usageevent WHERE organization_id = %(org)s
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


def fill_ledger(env: dict, rows: int) -> dict:
    import os

    os.environ.update(env)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from billing.models import NO_ID, Meter
    from keys.models import ApiKey
    from portal.models import Organization, Project

    org = Organization.objects.get(slug="bench")
    project = Project.objects.filter(organization=org).first()
    keys = list(ApiKey.objects.filter(organization=org).values_list("id", flat=True))
    meter = Meter.objects.get(code="requests")
    end = timezone.now()
    spacing = int(timedelta(days=30).total_seconds() * 1_000_000 // rows)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(
            FILL_SQL,
            {
                "org": org.id,
                "project": project.id,
                "meter": meter.id,
                "end": end,
                "spacing": spacing,
                "rows": rows,
                "keys": keys,
                "key_count": len(keys),
            },
        )
        cursor.execute("DELETE FROM billing_usagerollup WHERE organization_id = %s", [org.id])
        cursor.execute(ROLLUP_SQL, {"org": org.id, "no_id": NO_ID})
        cursor.execute("ANALYZE billing_usageevent")
        cursor.execute("ANALYZE billing_usagerollup")
        cursor.execute(
            "SELECT count(*) FROM billing_usageevent WHERE organization_id = %s", [org.id]
        )
        ledger_rows = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM billing_usagerollup WHERE organization_id = %s", [org.id]
        )
        rollup_rows = cursor.fetchone()[0]
    return {
        "ledger_rows": ledger_rows,
        "rollup_rows": rollup_rows,
        "keys": len(keys),
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def bench_query(env: dict, token: str, repeats: int) -> dict:
    from datetime import UTC, datetime, timedelta
    from urllib.parse import urlencode

    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    figures = {}
    with gunicorn(env, workers=2) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {token}"}
        for label, extra in (
            ("total", {}),
            ("by_day", {"group_by": "day"}),
            ("by_day_and_key", {"group_by": "day,key"}),
        ):
            query = urlencode(
                {
                    "meter": "requests",
                    "customer": "bench",
                    "from": start.isoformat(),
                    "to": end.isoformat(),
                    **extra,
                }
            )
            latencies = []
            for attempt in range(repeats + 3):
                started = time.perf_counter()
                connection.request("GET", f"/api/v1/usage?{query}", headers=headers)
                response = connection.getresponse()
                body = json.loads(response.read())
                if response.status != 200:
                    raise RuntimeError(body)
                if attempt >= 3:  # warm-up excluded
                    latencies.append(time.perf_counter() - started)
            if label == "total":
                figures["total_quantity"] = body["results"][0]["quantity"]
            figures[label] = {
                "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
                "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
                "results": len(body["results"]),
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--skip-query", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()

    env = bench_env(DATABASE)
    recreate_database(DATABASE)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "create_org", "--slug", "bench", "--name", "Bench", "--owner", "bench@example.com")
    token = (
        manage(
            env, "create_token", "--operator", "--name", "bench", "--scopes", "all", capture=True
        )
        .strip()
        .splitlines()[-1]
    )
    manage(
        env,
        "shell",
        "-c",
        (
            "from portal.models import Organization; from portal.services import project_create;"
            "from keys.services import key_create; from portal.audit import Actor;"
            "org = Organization.objects.get(slug='bench');"
            "p = project_create(actor=Actor.system('bench'), organization=org, name='bench');"
            "[key_create(actor=Actor.system('bench'), project=p, name=f'k{i}', environment='live')"
            " for i in range(20)]"
        ),
    )

    figures = {
        "targets": {"events_per_s": 25000, "usage_query_p95_ms": 100},
        "peer_reference": PEER_REFERENCE,
    }
    if not args.skip_ingest:
        figures["ingest"] = bench_ingest(env, token, args.seconds, args.clients, args.workers)
        print(f"ingest: {figures['ingest']}")
    if not args.skip_query:
        figures["ledger"] = fill_ledger(env, args.rows)
        print(f"ledger: {figures['ledger']}")
        figures["usage_query_30_days"] = bench_query(env, token, args.repeats)
    save("ingest", figures)


if __name__ == "__main__":
    main()
