"""Quotas per billing period, checked and charged in one atomic Redis step.

Each quota is a counter per organization, meter and period (whole units). A `hard` quota
denies a call that would pass its limit; a `soft` one allows it and reports the crossing.
All of a call's quotas are decided together: a denial charges none of them. A counter
that does not exist (a new period, or Redis lost its data) is rebuilt from the ledger.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis

# KEYS: one counter per quota, then optionally the org's usage stream. ARGV: cost, usage
# payload ("" for none), then per quota: limit, hard (1/0).
# Reply: {status, index, then per quota: usage before, usage after}; status 1 allowed,
# 0 denied by quota `index`, -1 counter `index` missing (nothing charged).
QUOTA_SCRIPT = """
local cost = tonumber(ARGV[1])
local payload = ARGV[2]
local count = #KEYS
if payload ~= '' then count = count - 1 end
local values = {}
for i = 1, count do
  local value = redis.call('GET', KEYS[i])
  if not value then return {-1, i} end
  values[i] = tonumber(value)
end
for i = 1, count do
  local limit = tonumber(ARGV[2 * i + 1])
  local hard = tonumber(ARGV[2 * i + 2])
  if hard == 1 and values[i] + cost > limit then
    local reply = {0, i}
    for j = 1, count do
      reply[#reply + 1] = values[j]
      reply[#reply + 1] = values[j]
    end
    return reply
  end
end
local reply = {1, 0}
for i = 1, count do
  local after = redis.call('INCRBY', KEYS[i], cost)
  reply[#reply + 1] = values[i]
  reply[#reply + 1] = after
end
if payload ~= '' then redis.call('XADD', KEYS[#KEYS], '*', 'events', payload) end
return reply
"""

PERIOD_TTL_MS = 40 * 24 * 3600 * 1000  # a counter outlives its (monthly) period a little


@dataclass(frozen=True)
class Quota:
    meter: str
    limit: int
    behaviour: str  # "hard" or "soft"
    key: str


@dataclass(frozen=True)
class QuotaState:
    quota: Quota
    before: int
    after: int

    @property
    def remaining(self) -> int:
        return max(self.quota.limit - self.after, 0)

    @property
    def crossed(self) -> bool:
        """This call took a soft quota to or past its limit."""
        return self.before < self.quota.limit <= self.after


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    states: tuple[QuotaState, ...]
    denied_by: QuotaState | None = None


def quota_key(organization_id, meter: str, period_start: datetime) -> str:
    return f"tg:quota:{{{organization_id}}}:{meter}:{int(period_start.timestamp())}"


class QuotaCounter:
    def __init__(self, client: redis.Redis):
        self._redis = client
        self._script = client.register_script(QUOTA_SCRIPT)

    def check(
        self,
        quotas: list[Quota],
        cost: int,
        usage_so_far: Callable[[Quota], int],
        usage: tuple[str, str] | None = None,
    ) -> QuotaDecision:
        """`usage_so_far(quota)` reads the ledger; it runs only to rebuild a counter.
        `usage`: (stream key, payload) appended when allowed, in the same round trip."""
        if not quotas:
            return QuotaDecision(True, ())
        arguments = [cost, usage[1] if usage else ""]
        for quota in quotas:
            arguments += [quota.limit, 1 if quota.behaviour == "hard" else 0]
        keys = [quota.key for quota in quotas] + ([usage[0]] if usage else [])
        for _attempt in range(len(quotas) + 1):
            reply = self._script(keys=keys, args=arguments)
            status, index = int(reply[0]), int(reply[1])
            if status != -1:
                break
            missing = quotas[index - 1]
            # NX: if another process rebuilt it meanwhile, its value (and charges) stand.
            self._redis.set(missing.key, usage_so_far(missing), nx=True, px=PERIOD_TTL_MS)
        else:
            raise RuntimeError("quota counters could not be initialised")
        states = tuple(
            QuotaState(quota, int(reply[2 + 2 * i]), int(reply[3 + 2 * i]))
            for i, quota in enumerate(quotas)
        )
        return QuotaDecision(status == 1, states, states[index - 1] if status == 0 else None)
