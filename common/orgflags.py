"""Per-organization flags in Redis that the gate obeys: `payment_past_due`, `spend_cap_reached`.

Billing sets and clears them (dunning, the spend-cap check); the gate reads them through a
short in-process cache, so a flag takes effect within FLAG_CACHE_SECONDS without adding a
Redis round trip to every verify. Keys carry the org hash tag like every gate key.
"""

import time

import redis

PAYMENT_PAST_DUE = "payment_past_due"
SPEND_CAP_REACHED = "spend_cap_reached"
FLAG_CACHE_SECONDS = 2.0


def _key(organization_id) -> str:
    return f"tg:flags:{{{organization_id}}}"


def flag_set(client: redis.Redis, organization_id, name: str, *, seconds: int | None = None):
    """Raises `name` for the org; with `seconds`, it lapses unless raised again (for flags
    that a periodic check keeps fresh)."""
    until = int(time.time() + seconds) if seconds else 0
    client.hset(_key(organization_id), name, until)


def flag_clear(client: redis.Redis, organization_id, name: str) -> None:
    client.hdel(_key(organization_id), name)


def flags_read(client: redis.Redis, organization_id) -> frozenset[str]:
    now = time.time()
    raised = client.hgetall(_key(organization_id))
    return frozenset(
        name.decode() for name, until in raised.items() if int(until) == 0 or int(until) > now
    )


class FlagCache:
    """The gate's view of org flags, at most FLAG_CACHE_SECONDS old."""

    def __init__(self, client: redis.Redis, seconds: float = FLAG_CACHE_SECONDS):
        self._redis = client
        self._seconds = seconds
        self._entries: dict[str, tuple[frozenset[str], float]] = {}

    def get(self, organization_id: str) -> frozenset[str]:
        found = self._entries.get(organization_id)
        now = time.monotonic()
        if found is not None and now - found[1] < self._seconds:
            return found[0]
        flags = flags_read(self._redis, organization_id)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[organization_id] = (flags, now)
        return flags
