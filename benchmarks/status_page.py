"""The status page's rebuild: `devdocs.status.status_snapshot_build` over 90 days of buckets.

A fresh database (PostgreSQL by default, or a scratch SQLite file with --sqlite, the
embedded mode) gets one public product with --endpoints endpoints (a generated OpenAPI
document: half GET = group read, half POST = write, every fifth POST in group bulk) and one
HealthBucket per endpoint and hour for 90 days (2,160 hours) in environment live, each with
calls, errors and a 12-element histogram; --test-share of the hours also get a test-environment
bucket (the Sandbox component).

The rebuild is then timed --repeat times two ways, in the same process and database:
- "before": the per-row Python aggregation the status page used first (every bucket read,
  its JSON histogram merged into every window, day and group it belongs to), copied here
  as `legacy_health_reports` so the comparison stays runnable;
- "after": the current devdocs.health.health_reports (sums, histogram elements included,
  made by the database per endpoint and band of hours / per endpoint and day).
Both must give the same figures (checked). The cache is not involved: this is the cost one
process pays every STATUS_CACHE_SECONDS.

Usage: python benchmarks/status_page.py [--endpoints 60] [--repeat 5] [--sqlite]
Writes results/status_page.json (results/status_page_sqlite.json with --sqlite).
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ROOT, bench_env, manage, recreate_database, save

DATABASE = os.environ.get("BENCH_STATUS_DATABASE", "tollgate_bench_status")
SQLITE_PATH = ROOT / "var" / "bench_status.sqlite3"
HOURS = 24 * 90


def _django(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def document(endpoints: int) -> dict:
    paths = {}
    for n in range(endpoints):
        path = f"/resources{n // 2}/{{id}}" if n % 2 == 0 else f"/resources{n // 2}"
        method = "get" if n % 2 == 0 else "post"
        operation = {"operationId": f"op{n}"}
        if n % 2 and (n // 2) % 5 == 0:
            operation["x-tollgate-group"] = "bulk"
        if n % 2 == 0:
            paths[path] = {"parameters": [{"name": "id", "in": "path"}], method: operation}
        else:
            paths[path] = {method: operation}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bench API", "version": "1.0"},
        "servers": [{"url": "https://api.example.com/v1"}],
        "paths": paths,
    }


def fill(endpoints: int, test_share: float) -> dict:
    from django.utils import timezone

    from devdocs.health import BUCKETS, hour_of
    from devdocs.models import HealthBucket
    from keys.services import api_version_create
    from portal.audit import Actor

    version = api_version_create(
        actor=Actor.system("bench"),
        product_code="bench",
        version="v1",
        document=document(endpoints),
    )
    ids = list(version.endpoints.values_list("id", flat=True))
    now_hour = hour_of(timezone.now())
    rng = random.Random(7)
    rows, batch = 0, []
    started = time.perf_counter()
    for endpoint_id in ids:
        for hours_ago in range(HOURS):
            environments = ["live"] + (["test"] if rng.random() < test_share else [])
            for environment in environments:
                histogram = [rng.randint(0, 40) for _ in range(BUCKETS)]
                calls = sum(histogram) or 1
                batch.append(
                    HealthBucket(
                        endpoint_id=endpoint_id,
                        environment=environment,
                        hour=now_hour - timedelta(hours=hours_ago),
                        calls=calls,
                        errors=rng.randint(0, max(calls // 50, 1)),
                        latency_ms_total=calls * 42.0,
                        histogram=histogram,
                    )
                )
            if len(batch) >= 5000:
                HealthBucket.objects.bulk_create(batch)
                rows += len(batch)
                batch = []
    HealthBucket.objects.bulk_create(batch)
    rows += len(batch)
    return {
        "endpoints": len(ids),
        "buckets": rows,
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


# --- "before": the first implementation, kept here for the comparison ----------------------
def legacy_health_reports(*, groups, environment, now):
    """devdocs.health.health_reports as first written: one query reads every bucket of the
    span; windows, days and the last hour are summed per row in Python, histograms merged
    element by element for each."""
    from devdocs.health import (
        STRIP_DAYS,
        WINDOWS,
        Health,
        HealthReport,
        hour_of,
        window_start,
    )
    from devdocs.models import HealthBucket

    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=STRIP_DAYS - 1)
    longest = max(window.hours for window in WINDOWS)
    since = min(window_start(now, longest), first_day)
    last_hour_start = hour_of(now) - timedelta(hours=1)
    starts = {window.code: window_start(now, window.hours) for window in WINDOWS}
    day_starts = [first_day + timedelta(days=offset) for offset in range(STRIP_DAYS)]
    reports = {
        name: HealthReport(
            windows={window.code: Health() for window in WINDOWS},
            days=[(day, Health()) for day in day_starts],
            last_hour=Health(),
        )
        for name in groups
    }
    members: dict[str, list[str]] = {}
    for name, endpoint_ids in groups.items():
        for endpoint_id in endpoint_ids:
            members.setdefault(str(endpoint_id), []).append(name)
    if not members:
        return reports
    rows = HealthBucket.objects.filter(
        endpoint_id__in=list(members),
        environment=environment,
        hour__gte=since,
        hour__lte=hour_of(now),
        calls__gt=0,
    ).values_list("endpoint_id", "hour", "calls", "errors", "latency_ms_total", "histogram")
    for endpoint_id, hour, calls, errors, latency, histogram in rows:
        hour = hour.astimezone(UTC)
        for name in members.get(str(endpoint_id), ()):
            report = reports[name]
            for code, start in starts.items():
                if hour >= start:
                    report.windows[code].add(calls, errors, latency, histogram)
            day_index = (hour - first_day).days
            if 0 <= day_index < STRIP_DAYS:
                report.days[day_index][1].add(calls, errors, latency, histogram)
            if hour >= last_hour_start:
                report.last_hour.add(calls, errors, latency, histogram)
    return reports


def figures(snapshot) -> list:
    """What both implementations must agree on (the days' percentiles are not shown)."""
    out = []
    for component in snapshot.components:
        out.append((component.code, component.indicator))
        for holder in [component, *component.parts]:
            for code, window in holder.windows.items():
                out.append(
                    (
                        component.code,
                        getattr(holder, "code", ""),
                        code,
                        window.calls,
                        window.errors,
                        None if window.p50_ms is None else round(window.p50_ms, 6),
                        None if window.p95_ms is None else round(window.p95_ms, 6),
                    )
                )
        out += [(component.code, day.date, day.calls, day.errors) for day in component.days]
    return out


def timed(repeat: int, now) -> tuple[dict, object]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from devdocs.status import status_snapshot_build

    seconds, snapshot = [], None
    for _ in range(repeat):
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            snapshot = status_snapshot_build(now=now)
            seconds.append(time.perf_counter() - started)
    return {
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
        "queries": len(queries),
    }, snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--sqlite", action="store_true", help="a scratch SQLite file instead")
    parser.add_argument("--database", default=DATABASE, help="the scratch PostgreSQL database")
    args = parser.parse_args()

    env = bench_env(args.database)
    if args.sqlite:
        SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
        SQLITE_PATH.unlink(missing_ok=True)
        env["DATABASE_URL"] = f"sqlite:///{SQLITE_PATH}"
    else:
        recreate_database(args.database)
    manage(env, "migrate", "--noinput", "-v0")
    _django(env)
    from django.utils import timezone

    import devdocs.status

    print(f"filling {args.endpoints} endpoints x {HOURS} hours ...", flush=True)
    filled = fill(args.endpoints, args.test_share)
    print(f"  {filled}", flush=True)
    now = timezone.now()

    current = devdocs.status.health_reports
    devdocs.status.health_reports = legacy_health_reports
    try:
        before, old_snapshot = timed(args.repeat, now)
    finally:
        devdocs.status.health_reports = current
    print(f"before (per-row Python): {before}", flush=True)
    after, new_snapshot = timed(args.repeat, now)
    print(f"after (sums in SQL):     {after}", flush=True)
    same = figures(old_snapshot) == figures(new_snapshot)
    if not same:
        raise SystemExit("the two implementations disagree: not saving")

    save(
        "status_page_sqlite" if args.sqlite else "status_page",
        {
            "parameters": {**vars(args), "database": "sqlite" if args.sqlite else "postgresql"},
            "data": filled,
            "before": before,
            "after": after,
            "speedup": round(before["median_s"] / after["median_s"], 1),
            "same_figures": same,
        },
    )
    if args.sqlite:
        SQLITE_PATH.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
