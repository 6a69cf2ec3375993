"""The Redis connection for rate limits, counters and streams.

With REDIS_URL unset (the embedded default) this hands out one in-process fakeredis
server with Lua support, so Lua scripts and streams run through the same code paths.
"""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    if settings.REDIS_URL:
        return redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def new_dedicated_redis() -> redis.Redis:
    """A client holding one connection of its own, for the gate's per-call path: no pool
    checkout per command (redis-py serialises threads on it with a lock)."""
    if not settings.REDIS_URL:
        return get_redis()  # the in-process server: nothing to gain
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        single_connection_client=True,
    )
