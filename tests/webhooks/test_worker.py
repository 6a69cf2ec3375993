"""Real Celery workers on a private Redis, delivering from PostgreSQL to a local receiver:
a worker killed with SIGKILL mid-delivery and a Redis restart lose nothing.

Each test starts its own `redis-server --save ''` (nothing survives a restart, the worst
case) and workers with `celery -A config worker -Q webhooks`; the test plays beat by
calling the sweeper itself. Leases are short here (seconds) so recovery fits in a test.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.db import connection
from kombu import Exchange, Queue

from tests.webhooks.conftest import Reply
from webhooks.delivery import deliveries_lease_for_queue, deliveries_sweep
from webhooks.models import Delivery, DeliveryAttempt

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Workers:
    """Celery worker processes for the `webhooks` queue, against the test database."""

    def __init__(self, broker_url: str) -> None:
        database = dict(connection.settings_dict)
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=(
                f"postgres://{database['USER']}:{database.get('PASSWORD') or ''}"
                f"@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/"
                f"{database['NAME']}"
            ),
            CELERY_BROKER_URL=broker_url,
            CELERY_TASK_ALWAYS_EAGER="false",
            WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
            WEBHOOKS_LEASE_SECONDS=str(LEASE_SECONDS),
            WEBHOOKS_QUEUE_LEASE_SECONDS=str(LEASE_SECONDS),
            WEBHOOKS_ENDPOINT_CONCURRENCY="16",
            LOG_LEVEL="WARNING",
        )
        self.processes: list[subprocess.Popen] = []

    def start(self, *, threads: int = 8) -> subprocess.Popen:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "webhooks",
                "-P",
                "threads",
                "-c",
                "8",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("WEBHOOK_WORKER_LOG", os.devnull), "ab"),  # noqa: SIM115
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


class Publisher:
    """Publishes `deliver` messages to the private broker, as the nudge and beat would."""

    def __init__(self, broker_url: str) -> None:
        # The broker is passed to every publish: CELERY_BROKER_URL (memory:// in tests)
        # would win over an app's own setting.
        self.broker_url = broker_url
        self.app = Celery("webhook-tests")
        self.queue = Queue("webhooks", Exchange("webhooks"), routing_key="webhooks")

    def publish(self, items: list[tuple[str, str]]) -> None:
        by_token: dict[str, list[str]] = {}
        for delivery_id, token in items:
            by_token.setdefault(token, []).append(delivery_id)
        try:
            with self.app.connection_for_write(self.broker_url) as broker:
                for token, ids in by_token.items():
                    for start in range(0, len(ids), 4):  # batches, as webhooks.tasks sends
                        self.app.send_task(
                            "webhooks.tasks.deliver_batch",
                            args=[ids[start : start + 4], token],
                            queue=self.queue,
                            connection=broker,
                            retry=False,
                        )
        except Exception:
            pass  # the broker is down: the sweeper queues them again after their lease

    def nudge(self, delivery_ids: list[str]) -> None:
        self.publish(deliveries_lease_for_queue(delivery_ids=delivery_ids))


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def broker(redis_server, monkeypatch):
    publisher = Publisher(redis_server.url)
    monkeypatch.setattr("webhooks.services.nudge", publisher.nudge)
    yield publisher
    publisher.app.close()


@pytest.fixture
def workers(redis_server):
    started = Workers(redis_server.url)
    yield started
    started.stop()


def wait_for(condition, *, timeout: float, sweep: Publisher | None = None, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if sweep is not None:
            deliveries_sweep(enqueue=sweep.publish)
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def all_finished() -> bool:
    return not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def test_a_worker_killed_mid_delivery_loses_nothing(
    endpoint, receiver, emit_ping, broker, workers, settings
):
    settings.WEBHOOKS_QUEUE_LEASE_SECONDS = LEASE_SECONDS
    # The first requests hang long enough for the worker to die in the middle of them.
    receiver.reply(*[Reply(delay=5.0) for _ in range(4)])
    deliveries = [delivery for n in range(12) for delivery in emit_ping(f"event {n}")]
    first = workers.start()

    wait_for(lambda: len(receiver.received) >= 2, timeout=30, what="a delivery in flight")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    held = Delivery.objects.filter(status="pending", lease_until__isnull=False).count()
    assert held >= 2  # claimed by the dead worker, held until their lease runs out

    workers.start()
    wait_for(all_finished, timeout=90, sweep=broker, what="every delivery to finish")

    statuses = set(Delivery.objects.values_list("status", flat=True))
    assert statuses == {"succeeded"}
    events = {delivery.event_id for delivery in deliveries}
    # At least once: every event reached the receiver, each time with a valid signature.
    assert set(receiver.event_ids()) == events
    assert all(item.verified[endpoint.secret] for item in receiver.received)
    assert DeliveryAttempt.objects.filter(status_code=200).count() == len(deliveries)


def test_a_redis_restart_loses_nothing(
    endpoint, receiver, emit_ping, broker, workers, redis_server, settings
):
    settings.WEBHOOKS_QUEUE_LEASE_SECONDS = LEASE_SECONDS
    receiver.default = Reply(delay=0.5)
    receiver.reply(Reply(status=503))  # and one retry (5 s later) along the way
    workers.start(threads=2)  # slow enough that most messages still wait in Redis
    deliveries = [delivery for n in range(60) for delivery in emit_ping(f"event {n}")]
    wait_for(lambda: len(receiver.received) >= 3, timeout=20, what="deliveries to start")

    # Every queued message is lost: Redis restarts empty (--save '').
    redis_server.kill()
    time.sleep(0.5)
    redis_server.start()
    assert redis.Redis(port=redis_server.port).llen("webhooks") == 0
    assert Delivery.objects.filter(status="pending").count() > 20

    wait_for(all_finished, timeout=45, sweep=broker, what="every delivery to finish")

    counts = {
        status: Delivery.objects.filter(status=status).count() for status in ("succeeded", "failed")
    }
    exhausted = Delivery.objects.filter(status="failed").exclude(last_error="endpoint_disabled")
    assert counts["succeeded"] + exhausted.count() == len(deliveries)
    assert counts["succeeded"] == len(deliveries)
    assert set(receiver.event_ids()) == {delivery.event_id for delivery in deliveries}


def test_a_slow_endpoint_does_not_delay_the_others(
    make_endpoint, receiver, emit_ping, broker, workers, settings
):
    from tests.webhooks.conftest import Receiver

    slow_receiver = Receiver().start()
    try:
        slow_receiver.default = Reply(delay=3.0)
        slow = make_endpoint(slow_receiver.url)
        fast = make_endpoint(receiver.url)
        workers.start(threads=2)
        for n in range(15):
            emit_ping(f"event {n}")

        wait_for(
            lambda: Delivery.objects.filter(endpoint=fast, status="succeeded").count() == 15,
            timeout=20,
            what="the fast endpoint's deliveries",
        )
        # Every delivery to the fast endpoint arrived while the slow one still hung.
        assert Delivery.objects.filter(endpoint=slow, status="succeeded").count() == 0
        first = DeliveryAttempt.objects.order_by("attempted_at").first().attempted_at
        last_fast = DeliveryAttempt.objects.filter(endpoint=fast).latest("attempted_at")
        assert (last_fast.attempted_at - first).total_seconds() < 2.0
    finally:
        slow_receiver.stop()
