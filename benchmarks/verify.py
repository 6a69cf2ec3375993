"""Verify throughput and latency, side by side with the baseline a Django developer builds.

Both servers run as `gunicorn <app> -w 2` (sync workers) on PostgreSQL and Redis and are
loaded by `wrk -t2 -c16 -d10s` (Debian's wrk) on this machine (`--workers`/`--threads`
change both servers alike, for exploring):
- Tollgate: POST /api/v1/verify with an operator token, a live key, a real endpoint.
- Baseline: a DRF view protected by djangorestframework-api-key's HasAPIKey plus
  django-ratelimit on Redis (benchmarks/baseline/).
Targets (issue #5, 2-core machine): >= 3x the baseline's requests/s; p99 < 10 ms.

Usage: python benchmarks/verify.py [--duration 10] [--connections 16]
Needs: apt-get install wrk; pip install -e '.[bench]'.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ROOT, bench_env, gunicorn, manage, recreate_database, save

TOLLGATE_DB = "tollgate_bench_verify"
BASELINE_DB = "tollgate_bench_baseline"
DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "Documents API", "version": "1"},
    "servers": [{"url": "https://api.example.com/v1"}],
    "paths": {
        "/documents/{id}": {"get": {"operationId": "getDocument"}},
        "/documents": {
            "get": {"operationId": "listDocuments"},
            "post": {"operationId": "createDocument"},
        },
    },
}
SETUP = """
from billing.demo_catalog import ensure_demo_catalog
from billing.catalog import plan_create
from billing.subscriptions import subscription_subscribe
from keys.services import api_version_create, key_create
from portal.audit import Actor
from portal.models import Organization
from portal.services import project_create, token_create
actor = Actor.system("bench")
ensure_demo_catalog(actor=actor)
plan = plan_create(actor=actor, body={"code": "bench", "name": "Bench", "base_fee": "0",
    "entitlements": {"rate_limits": [{"limit": 1000000, "window_seconds": 1}],
                     "scopes": ["read"], "endpoint_groups": ["read"]}})
org = Organization.objects.get(slug="bench")
subscription_subscribe(actor=actor, organization=org, plan=plan)
api_version_create(actor=actor, product_code="documents", version="v1", document=DOCUMENT)
project = project_create(actor=actor, organization=org, name="bench")
_key, raw_key = key_create(actor=actor, project=project, name="bench", environment="live",
                           scopes=["read"])
_token, raw_token = token_create(actor=actor, kind="operator", name="bench",
                                 scopes=["gate:verify"])
print(raw_key)
print(raw_token)
"""
BASELINE_SETUP = """
from rest_framework_api_key.models import APIKey
_key, raw = APIKey.objects.create_key(name="bench")
print(raw)
"""


def wrk(
    port: int,
    path: str,
    headers: dict,
    body: dict,
    duration: int,
    connections: int,
    warm_up: int = 3,
):
    """Runs wrk; a first run of `warm_up` seconds (caches, imports, connections) is dropped."""
    if warm_up:
        wrk(port, path, headers, body, warm_up, connections, warm_up=0)
    script = "wrk.method = 'POST'\n" + f"wrk.body = {json.dumps(json.dumps(body))}\n"
    for name, value in headers.items():
        script += f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            handle.name,
            f"http://127.0.0.1:{port}{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(handle.name)
    return parse_wrk(output)


def _milliseconds(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def parse_wrk(output: str) -> dict:
    figures = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])}
    for label, key in (("50%", "p50_ms"), ("99%", "p99_ms")):
        match = re.search(rf"^\s+{label}\s+([\d.]+(?:us|ms|s))\s*$", output, re.MULTILINE)
        figures[key] = round(_milliseconds(match[1]), 3)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    figures["non_2xx"] = int(errors[1]) if errors else 0
    figures["requests_per_s"] = round(figures["requests_per_s"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    # The set-up: two sync workers for both servers.
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="> 1: gthread workers (keep-alive)")
    args = parser.parse_args()

    env = bench_env(TOLLGATE_DB)
    recreate_database(TOLLGATE_DB)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "create_org", "--slug", "bench", "--name", "Bench", "--owner", "b@example.com")
    setup = f"import json\nDOCUMENT = json.loads({json.dumps(DOCUMENT)!r})\n{SETUP}"
    raw_key, raw_token = manage(env, "shell", "-c", setup, capture=True).split()[-2:]

    baseline_env = {
        **env,
        "DATABASE_URL": env["DATABASE_URL"].replace(TOLLGATE_DB, BASELINE_DB),
        "DJANGO_SETTINGS_MODULE": "benchmarks.baseline.settings",
        "PYTHONPATH": str(ROOT),
    }
    recreate_database(BASELINE_DB)
    django_admin = [sys.executable, "-m", "django"]
    subprocess.run(
        [*django_admin, "migrate", "--noinput", "-v0"], cwd=ROOT, env=baseline_env, check=True
    )
    baseline_key = subprocess.run(
        [*django_admin, "shell", "-c", BASELINE_SETUP],
        cwd=ROOT,
        env=baseline_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]

    body = {"key": raw_key, "method": "GET", "path": "/v1/documents/42"}
    with gunicorn(env, workers=args.workers, threads=args.threads) as port:
        tollgate = wrk(
            port,
            "/api/v1/verify",
            {"Authorization": f"Bearer {raw_token}", "Content-Type": "application/json"},
            body,
            args.duration,
            args.connections,
        )
    with gunicorn(
        baseline_env, workers=args.workers, threads=args.threads, app="benchmarks.baseline.wsgi"
    ) as port:
        baseline = wrk(
            port,
            "/protected",
            {"Authorization": f"Api-Key {baseline_key}", "Content-Type": "application/json"},
            {},
            args.duration,
            args.connections,
        )
    ratio = tollgate["requests_per_s"] / max(baseline["requests_per_s"], 1)
    save(
        "verify",
        {
            "setup": {
                "server": f"gunicorn -w {args.workers} "
                + (f"--threads {args.threads} (gthread)" if args.threads > 1 else "(sync)"),
                "load": f"wrk -t2 -c{args.connections} -d{args.duration}s, after a 3 s warm-up",
                "database": "PostgreSQL",
                "cache": "Redis",
            },
            "targets": {"throughput_vs_baseline": 3.0, "p99_ms": 10.0},
            "tollgate_verify": tollgate,
            "baseline_drf_api_key_ratelimit": baseline,
            "throughput_vs_baseline": round(ratio, 2),
        },
    )


if __name__ == "__main__":
    main()
