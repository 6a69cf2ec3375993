"""Rate limits in Redis: GCRA, several limits decided together by one Lua script.

Each limit is `limit` requests per `window_seconds` with a `burst` (default `limit`): an
emission interval T = window / limit and room for `burst` back-to-back requests. One script
call checks every limit of a request against Redis's own clock and either charges all of
them or none, so a request denied by the per-org limit never uses up the per-key one, and
concurrent gates on any number of machines never admit more than the limits allow.

Keys carry the organization as a hash tag (`{org}`), so one script's keys share a Redis
Cluster slot and the same code runs unchanged on Redis Cluster.
"""

from dataclasses import dataclass

import redis

# KEYS: one key per limit, then optionally the org's usage stream. ARGV: cost, usage
# payload ("" for none), then per limit: interval_us, capacity_us. When allowed and a payload
# is given, the call's usage is appended to the stream in the same step (one round trip).
# Returns {allowed, denying index (0 if none), then per limit: remaining, reset_us, retry_us}.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local cost = tonumber(ARGV[1])
local payload = ARGV[2]
local limits = #KEYS
if payload ~= '' then limits = limits - 1 end
local allowed, denied_by = 1, 0
local results, updates = {}, {}
for i = 1, limits do
  local interval = tonumber(ARGV[2 * i + 1])
  local capacity = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local used = new_tat - now
  if used > capacity then
    if allowed == 1 then denied_by = i end
    allowed = 0
    local remaining = math.floor((capacity - (tat - now)) / interval)
    if remaining < 0 then remaining = 0 end
    results[#results + 1] = remaining
    results[#results + 1] = tat - now
    results[#results + 1] = used - capacity
  else
    updates[i] = new_tat
    results[#results + 1] = math.floor((capacity - used) / interval)
    results[#results + 1] = used
    results[#results + 1] = 0
  end
end
if allowed == 1 then
  for i = 1, limits do
    redis.call('SET', KEYS[i], updates[i], 'PX', math.ceil((updates[i] - now) / 1000) + 1000)
  end
  if payload ~= '' then redis.call('XADD', KEYS[#KEYS], '*', 'events', payload) end
end
local reply = {allowed, denied_by}
for _, value in ipairs(results) do reply[#reply + 1] = value end
return reply
"""

MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class Limit:
    """`limit` requests per `window_seconds` for one subject (a key, a project, an org)."""

    key: str
    limit: int
    window_seconds: int
    burst: int | None = None

    @property
    def capacity(self) -> int:
        return self.burst or self.limit

    @property
    def interval_us(self) -> int:
        return max(self.window_seconds * MICROSECONDS // self.limit, 1)


@dataclass(frozen=True)
class LimitState:
    limit: Limit
    remaining: int
    reset_seconds: float  # until the bucket is full again
    retry_after_seconds: float  # 0 when this limit allows


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    states: tuple[LimitState, ...]
    denied_by: LimitState | None

    @property
    def binding(self) -> LimitState | None:
        """The limit to report: the one that denied, else the one with least room left."""
        if self.denied_by is not None:
            return self.denied_by
        return min(self.states, key=lambda state: state.remaining, default=None)


def limit_key(organization_id, subject: str, subject_id, limit: int, window: int) -> str:
    return f"tg:rl:{{{organization_id}}}:{subject}:{subject_id}:{limit}/{window}"


def _pack(*args) -> bytes:
    """A command in RESP, for the few values the script takes (bytes, str, int)."""
    parts = [b"*%d\r\n" % len(args)]
    for value in args:
        data = value if isinstance(value, bytes) else str(value).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RateLimiter:
    def __init__(self, client: redis.Redis):
        self._client = client
        self._script = client.register_script(GCRA_SCRIPT)
        self._sha = self._script.sha.encode()
        # The gate's own single connection (common.redis.new_dedicated_redis): the script
        # is sent on it directly, skipping redis-py's per-command layers (about 15 µs of a
        # verify). Anything unusual falls back to the ordinary call, which reconnects,
        # loads the script and retries as redis-py always does.
        self._connection = getattr(client, "connection", None)
        if not hasattr(client, "single_connection_lock"):
            self._connection = None

    def _run(self, keys: list, arguments: list):
        connection = self._connection
        if connection is not None and connection._sock is not None:
            # The client's own lock: threads of one process share the connection.
            with self._client.single_connection_lock:
                try:
                    connection.send_packed_command(
                        [_pack(b"EVALSHA", self._sha, len(keys), *keys, *arguments)],
                        check_health=False,
                    )
                    return connection.read_response()
                except redis.exceptions.NoScriptError:
                    pass  # the server lost its scripts (a restart): the fallback loads it
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                    connection.disconnect()
        return self._script(keys=keys, args=arguments)

    def check(
        self, limits: list[Limit], cost: int = 1, usage: tuple[str, str] | None = None
    ) -> LimitDecision:
        """`usage`: (stream key, payload) to append when allowed, in the same round trip.
        The stream must share the limits' hash tag (the organization)."""
        if not limits:
            return LimitDecision(True, (), None)
        arguments = [cost, usage[1] if usage else ""]
        for limit in limits:
            arguments += [limit.interval_us, limit.interval_us * limit.capacity]
        keys = [limit.key for limit in limits] + ([usage[0]] if usage else [])
        reply = self._run(keys, arguments)
        allowed, denied_index = int(reply[0]), int(reply[1])
        states = tuple(
            LimitState(
                limit=limit,
                remaining=int(reply[2 + 3 * i]),
                reset_seconds=int(reply[3 + 3 * i]) / MICROSECONDS,
                retry_after_seconds=int(reply[4 + 3 * i]) / MICROSECONDS,
            )
            for i, limit in enumerate(limits)
        )
        denied = states[denied_index - 1] if denied_index else None
        return LimitDecision(bool(allowed), states, denied)


def policy_header(limits: list[Limit]) -> str:
    """IETF RateLimit-Policy: `50;w=1, 2000;w=60`."""
    return ", ".join(f"{limit.limit};w={limit.window_seconds}" for limit in limits)
