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
