"""Webhook delivery: deliveries/s with 2 Celery workers, and commit -> first attempt latency.

A fresh PostgreSQL database gets one organization with --endpoints endpoints, all pointing
at a local receiver (an asyncio HTTP server in its own process answering 200 at once).
Two Celery worker processes (`celery -A config worker -Q webhooks -P threads -c 4`) consume
the `webhooks` queue on Redis; this process emits events with webhooks.services.emit, as
the rest of Tollgate does: the event and its deliveries are committed, then nudged.

Part 1 (throughput): --burst events are emitted as fast as one emitter can; reported is
deliveries/s from the first commit until every delivery has succeeded.
Part 2 (latency): events are emitted at a steady --rate deliveries/s for --seconds; reported
are p50/p95/p99 from each event's commit to the start of its first attempt (the worker's
claim, `DeliveryAttempt.attempted_at`), and the throughput achieved at that rate.

Usage: python benchmarks/webhooks.py [--endpoints 10] [--burst 2000] [--rate 500]
Targets (issue #7, 2-core machine): >= 500 deliveries/s; p95 commit -> first attempt < 1 s.
"""

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import REDIS_URL, bench_env, free_port, manage, percentile, recreate_database, save

DATABASE = "tollgate_bench_webhooks"
BROKER_URL = os.environ.get("BENCH_WEBHOOKS_BROKER_URL", REDIS_URL.rsplit("/", 1)[0] + "/12")
PEER_REFERENCE = {
    "svix": "retry schedule copied from Svix; no published per-node delivery figure",
}


# --- The receiver: a minimal keep-alive HTTP/1.1 server answering 200 ------------------------
class _Receiver(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
            )


def _serve(port: int) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Receiver, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- Setup and emission -------------------------------------------------------------------
def _django(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def setup(endpoints: int, receiver_port: int) -> str:
    from portal.models import Organization
    from webhooks import secrets
    from webhooks.models import WebhookEndpoint

    organization = Organization.objects.create(slug="bench", name="Bench")
    secret = secrets.encrypt(secrets.new_secret())
    WebhookEndpoint.objects.bulk_create(
        [
            WebhookEndpoint(
                organization=organization,
                url=f"http://127.0.0.1:{receiver_port}/hooks/{n}",
                secret_encrypted=secret,
            )
            for n in range(endpoints)
        ]
    )
    return str(organization.pk)


def emit_one(organization_id: str, n: int) -> tuple[str, float]:
    """Emits one event; returns its id and the wall-clock instant its transaction committed
    (taken by the first on-commit callback, before the nudge publishes)."""
    from django.db import transaction

    from webhooks.services import emit

    committed: list[float] = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time()))
        event = emit(organization=organization_id, type="ping", data={"message": f"bench {n}"})
    return event.id, committed[0]


def wait_all_done(total: int, *, timeout: float) -> float:
    from webhooks.models import Delivery

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = Delivery.objects.exclude(status=Delivery.Status.PENDING).count()
        if done >= total:
            return time.time()
        time.sleep(0.1)
    raise RuntimeError(f"deliveries not finished within {timeout} s")


def start_sweeper(stop: threading.Event) -> threading.Thread:
    """Plays beat: the sweep every 5 s (deferred deliveries and retries go through it)."""
    from webhooks.delivery import deliveries_sweep
    from webhooks.tasks import publish

    def run():
        while not stop.wait(5.0):
            deliveries_sweep(enqueue=publish)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def start_workers(env: dict, count: int, concurrency: int) -> list[subprocess.Popen]:
    processes = []
    for n in range(count):
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "webhooks",
            "-P", "threads", "-c", str(concurrency), "-n", f"bench{n}@%h",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            "--without-heartbeat",
        ]  # fmt: skip
        processes.append(
            subprocess.Popen(
                command,
                cwd=Path(__file__).resolve().parent.parent,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
    return processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--burst", type=int, default=1500, help="events in part 1")
    parser.add_argument("--rate", type=float, default=500, help="deliveries/s in part 2")
    parser.add_argument("--seconds", type=float, default=15, help="length of part 2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="task threads per worker")
    args = parser.parse_args()

    env = bench_env(DATABASE)
    env.update(
        CELERY_BROKER_URL=BROKER_URL,
        CELERY_TASK_ALWAYS_EAGER="false",
        WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
    )
    recreate_database(DATABASE)
    manage(env, "migrate", "--noinput", "-v", "0")
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()

    receiver_port = free_port()
    receiver = multiprocessing.Process(target=_serve, args=(receiver_port,), daemon=True)
    receiver.start()
    _django(env)
    from django.db import connection

    from webhooks.models import Delivery, DeliveryAttempt

    organization_id = setup(args.endpoints, receiver_port)
    workers: list[subprocess.Popen] = []
    stop_sweeper = threading.Event()
    try:
        # Part 1: throughput. The backlog is queued first (one emitter would otherwise be
        # the bottleneck), then the workers start; the rate is taken from the attempt log,
        # from the first attempt's start to the last one's end.
        for n in range(args.burst):
            emit_one(organization_id, n)
        burst_deliveries = args.burst * args.endpoints
        workers = start_workers(env, args.workers, args.concurrency)
        start_sweeper(stop_sweeper)
        wait_all_done(burst_deliveries, timeout=600)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT extract(epoch FROM max(attempted_at + duration_ms * interval '1 ms')"
                " - min(attempted_at)) FROM webhooks_deliveryattempt"
            )
            drain_seconds = float(cursor.fetchone()[0])
        throughput = burst_deliveries / drain_seconds
        print(f"burst: {burst_deliveries} deliveries in {drain_seconds:.1f} s ({throughput:.0f}/s)")
        done_before = burst_deliveries

        # Part 2: latency at a steady rate.
        events_per_second = args.rate / args.endpoints
        commits: dict[str, float] = {}
        begin = time.monotonic()
        count = int(events_per_second * args.seconds)
        started = time.time()
        for n in range(count):
            target = begin + n / events_per_second
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            event_id, committed = emit_one(organization_id, 100_000 + n)
            commits[event_id] = committed
        offered_seconds = time.time() - started
        total = done_before + count * args.endpoints
        finished = wait_all_done(total, timeout=600)
        latencies = []
        for event_id, attempted_at in DeliveryAttempt.objects.filter(
            event_id__in=list(commits)
        ).values_list("event_id", "attempted_at"):
            latencies.append(attempted_at.timestamp() - commits[event_id])
        steady_deliveries = count * args.endpoints
        failed = Delivery.objects.exclude(status="succeeded").count()
        attempts = DeliveryAttempt.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM webhooks_deliveryattempt WHERE status_code=200")
            ok_attempts = cursor.fetchone()[0]
    finally:
        stop_sweeper.set()
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        receiver.terminate()

    figures = {
        "config": {
            "endpoints": args.endpoints,
            "burst_events": args.burst,
            "steady_rate_deliveries_per_s": args.rate,
            "steady_seconds": args.seconds,
            "workers": args.workers,
            "task_threads_per_worker": args.concurrency,
            "broker": "redis",
        },
        "burst": {
            "deliveries": burst_deliveries,
            "deliveries_per_s": round(throughput, 1),
        },
        "steady": {
            "deliveries": steady_deliveries,
            "offered_deliveries_per_s": round(steady_deliveries / offered_seconds, 1),
            "delivered_deliveries_per_s": round(steady_deliveries / (finished - started), 1),
            "commit_to_first_attempt_ms": {
                "p50": round(percentile(latencies, 0.50) * 1000, 1),
                "p95": round(percentile(latencies, 0.95) * 1000, 1),
                "p99": round(percentile(latencies, 0.99) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
            },
        },
        "checks": {
            "not_succeeded": failed,
            "attempts": attempts,
            "attempts_200": ok_attempts,
        },
        "targets": {"deliveries_per_s": 500, "p95_commit_to_first_attempt_ms": 1000},
        "peer_reference": PEER_REFERENCE,
    }
    save("webhooks", figures)


if __name__ == "__main__":
    main()
