"""The gate's key cache: no database query for a known key, changes seen within a second.

Each process keeps snapshots of the keys it has seen (and, briefly, of hashes that matched
no key). Every change to a key (create, rotate, revoke) bumps a global epoch in Redis and
logs the key's hash under that epoch. A process looks at the epoch at most every
`check_interval` seconds; when it moved, it evicts just the hashes logged since its last
look (or everything, if the log no longer reaches back that far). Status is computed from
the snapshot's timestamps at each call, so expiry and the end of a rotation grace period
need no invalidation at all.
"""

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import redis
from django.db import transaction

from keys.format import key_hash
from keys.models import ApiKey

# One hash tag, so the publishing script's two keys share a Redis Cluster slot.
EPOCH_KEY = "tg:{keys}:epoch"
CHANGES_KEY = "tg:{keys}:changes"
CHANGES_KEPT = 100_000  # changes kept in the log; a process further behind clears all
NEGATIVE_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class CachedKey:
    id: str
    organization_id: str
    organization_slug: str
    project_id: str
    environment: str
    scopes: tuple[str, ...]
    allowed_cidrs: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None
    grace_ends_at: datetime | None
    # A marketplace app's access token (its twin key): the app its calls are attributed to.
    app_id: str | None = None

    def status_at(self, now: datetime) -> str:
        """The same rule as ApiKey.status_at, on the snapshot."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return ApiKey.Status.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return ApiKey.Status.EXPIRED
        if self.grace_ends_at is not None:
            return ApiKey.Status.ROTATING if self.grace_ends_at > now else ApiKey.Status.EXPIRED
        return ApiKey.Status.ACTIVE


def _snapshot(key: ApiKey) -> CachedKey:
    return CachedKey(
        id=str(key.id),
        organization_id=str(key.organization_id),
        organization_slug=key.organization.slug,
        project_id=str(key.project_id),
        environment=key.environment,
        scopes=tuple(key.scopes),
        allowed_cidrs=tuple(key.allowed_cidrs),
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        grace_ends_at=key.grace_ends_at,
        app_id=str(key.app_id) if key.app_id else None,
    )


# Bump the epoch and log the hash under it in one step: a reader that sees the new epoch
# always finds the change that made it.
PUBLISH_SCRIPT = """
local epoch = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], epoch, epoch .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
return epoch
"""


def publish_key_change(client: redis.Redis, hashed: str) -> int:
    """Every process evicts this hash within its check interval; returns the new epoch."""
    return int(client.eval(PUBLISH_SCRIPT, 2, EPOCH_KEY, CHANGES_KEY, hashed, CHANGES_KEPT))


def publish_key_change_on_commit(client: redis.Redis, hashed: str) -> None:
    transaction.on_commit(lambda: publish_key_change(client, hashed))


class KeyCache:
    def __init__(
        self, client: redis.Redis, *, check_interval: float = 0.5, max_entries: int = 100_000
    ):
        self._redis = client
        self._check_interval = check_interval
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[CachedKey | None, float]] = OrderedDict()
        self._epoch: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def get(self, raw_key: str) -> CachedKey | None:
        """The key's snapshot, or None if no key has this secret."""
        self._sync()
        hashed = key_hash(raw_key)
        with self._lock:
            found = self._entries.get(hashed)
            if found is not None:
                snapshot, stored_at = found
                if snapshot is not None or time.monotonic() - stored_at < NEGATIVE_TTL_SECONDS:
                    self._entries.move_to_end(hashed)
                    return snapshot
        key = ApiKey.objects.filter(key_hash=hashed).select_related("organization").first()
        snapshot = _snapshot(key) if key is not None else None
        with self._lock:
            self._entries[hashed] = (snapshot, time.monotonic())
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return snapshot

    def _sync(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._check_interval:
            return
        self._checked_at = now
        epoch = int(self._redis.get(EPOCH_KEY) or 0)
        if self._epoch is None:
            self._epoch = epoch
            return
        if epoch == self._epoch:
            return
        changes = self._redis.zrangebyscore(CHANGES_KEY, self._epoch + 1, epoch)
        oldest = self._redis.zrange(CHANGES_KEY, 0, 0, withscores=True)
        # The log covers our gap only if it reaches back to the first change we missed; a
        # Redis that was flushed (epoch went back) or trimmed past us cannot say what changed.
        covered = epoch > self._epoch and bool(oldest) and int(oldest[0][1]) <= self._epoch + 1
        with self._lock:
            if covered:
                for change in changes:
                    self._entries.pop(change.decode().split(":", 1)[1], None)
            else:
                self._entries.clear()
            self._epoch = epoch
