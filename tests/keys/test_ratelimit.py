"""GCRA rate limits in Redis: exact bursts, all-or-nothing multi-limits, no over-admission."""

import multiprocessing
import threading
import time
import uuid

import pytest

from common.redis import get_redis
from keys.ratelimit import Limit, RateLimiter, limit_key, policy_header


@pytest.fixture
def limiter():
    return RateLimiter(get_redis())


def fresh_key(name: str = "key") -> str:
    return limit_key(uuid.uuid4(), name, uuid.uuid4(), 0, 0)


def test_a_burst_is_admitted_exactly_then_denied_with_retry_after(limiter):
    limit = Limit(key=fresh_key(), limit=5, window_seconds=60)
    decisions = [limiter.check([limit]) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.binding.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    denied = decisions[5].denied_by
    assert denied.limit == limit
    assert 0 < denied.retry_after_seconds <= 12  # one emission interval: 60 s / 5
    assert denied.remaining == 0


def test_the_bucket_refills_at_the_emission_rate(limiter):
    limit = Limit(key=fresh_key(), limit=20, window_seconds=1, burst=2)  # one per 50 ms
    assert [limiter.check([limit]).allowed for _ in range(3)] == [True, True, False]
    time.sleep(0.12)
    assert limiter.check([limit]).allowed


def test_a_denial_by_one_limit_charges_none_of_the_others(limiter):
    per_key = Limit(key=fresh_key("key"), limit=10, window_seconds=60)
    per_org = Limit(key=fresh_key("org"), limit=3, window_seconds=60)
    results = [limiter.check([per_key, per_org]).allowed for _ in range(5)]
    assert results == [True, True, True, False, False]
    # Only the three admitted requests used the per-key limit.
    alone = limiter.check([per_key])
    assert alone.allowed and alone.binding.remaining == 10 - 4


def test_cost_uses_several_units(limiter):
    limit = Limit(key=fresh_key(), limit=10, window_seconds=60)
    assert limiter.check([limit], cost=7).allowed
    assert not limiter.check([limit], cost=4).allowed
    assert limiter.check([limit], cost=3).allowed


def test_policy_header_lists_every_limit():
    limits = [Limit("a", 50, 1), Limit("b", 2000, 60)]
    assert policy_header(limits) == "50;w=1, 2000;w=60"


def test_keys_of_one_org_share_a_cluster_slot():
    org = uuid.uuid4()
    assert f"{{{org}}}" in limit_key(org, "key", "k1", 50, 1)
    assert f"{{{org}}}" in limit_key(org, "org", org, 2000, 60)


def _hammer(key: str, attempts: int, threads: int, queue) -> None:
    limiter = RateLimiter(get_redis())
    limit = Limit(key=key, limit=100, window_seconds=3600)
    admitted = []

    def client():
        count = sum(1 for _ in range(attempts) if limiter.check([limit]).allowed)
        admitted.append(count)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(sum(admitted))


def test_64_concurrent_clients_in_4_processes_never_exceed_the_limit():
    get_redis.cache_clear()  # each forked process opens its own connections
    key = fresh_key()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_hammer, args=(key, 5, 16, queue)) for _ in range(4)]
    for process in processes:
        process.start()
    admitted = sum(queue.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    # 320 attempts within seconds against 100 per hour: exactly the burst of 100 gets in.
    assert admitted == 100


def test_the_same_script_runs_on_the_embedded_in_process_redis():
    import fakeredis

    limiter = RateLimiter(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    limit = Limit(key=fresh_key(), limit=3, window_seconds=60)
    assert [limiter.check([limit]).allowed for _ in range(4)] == [True, True, True, False]


def test_the_gates_own_connection_survives_a_script_flush_and_a_dropped_socket():
    """The direct EVALSHA path on the gate's connection falls back to redis-py, which loads
    the script again (a Redis restart forgets scripts) or reconnects."""
    from common.redis import new_dedicated_redis

    client = new_dedicated_redis()
    gate_limiter = RateLimiter(client)
    limit = Limit(fresh_key("flush"), limit=3, window_seconds=60)
    assert gate_limiter.check([limit]).allowed  # first call: the script is loaded
    client.script_flush()
    assert gate_limiter.check([limit]).allowed
    client.connection.disconnect()  # as if the server closed it
    assert gate_limiter.check([limit]).allowed
    decision = gate_limiter.check([limit])
    assert not decision.allowed  # the three calls above were each counted once
