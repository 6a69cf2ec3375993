"""The per-call decision (GATE-1..4): key, IP, endpoint, scope, plan, rate limits.

Checks run in the issue's order and stop at the first denial, so a call denied before the
rate limit consumes no rate limit. Nothing here queries the database for a known key: keys
come from the KeyCache, endpoint routers from an in-process catalog refreshed every few
seconds, entitlements from their per-org cache, limits from one Redis script.

Allowed calls are metered through a Redis stream (keys/gate_usage.py); live keys count
against their plan's quotas (keys/quota.py), test keys never do.

Payment state and spend caps are flags that billing raises on the organization
(common/orgflags.py); the gate reads them through a two-second cache.
"""

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import redis
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.utils import timezone

from billing.entitlements import entitlements_for
from billing.models import Meter
from billing.selectors import UsageFilter, usage_aggregate
from billing.subscriptions import period_containing
from common.orgflags import PAYMENT_PAST_DUE, SPEND_CAP_REACHED, FlagCache
from common.request_id import new_request_id
from keys.blocklist import BlockList
from keys.format import key_is_well_formed
from keys.gate_usage import (
    CROSSINGS_KEY,
    call_events,
    ensure_registered,
    record_call,
    record_crossing,
)
from keys.keycache import CachedKey, KeyCache
from keys.models import ApiKey, ApiVersion, Block, Endpoint
from keys.quota import Quota, QuotaCounter, QuotaDecision, QuotaState, quota_key
from keys.ratelimit import Limit, LimitDecision, RateLimiter, limit_key
from keys.routing import Router, without_base_path
from keys.selectors import ip_in_cidrs
from portal.audit import Actor

CATALOG_REFRESH_SECONDS = 5.0
# Hard quotas this process has reported exhausted (flag keys): later refusals cost nothing.
_exhaustions_reported: set[str] = set()
# Denials that count towards an automatic block: the key is known and its client keeps
# calling what it may not (revoked, expired and already blocked keys are not counted).
COUNTED_DENIALS = frozenset(
    {
        "ip_not_allowed",
        "endpoint_unknown",
        "endpoint_ambiguous",
        "endpoint_sunset",
        "scope_missing",
        "endpoint_not_in_plan",
        "rate_limited",
        "quota_exhausted",
    }
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyInput:
    key: str
    method: str
    path: str
    ip: str | None = None
    cost: int = 1
    product: str | None = None
    version: str | None = None
    request_id: str | None = None


@dataclass
class Decision:
    allowed: bool
    code: str
    key: CachedKey | None = None
    endpoint: Endpoint | None = None
    entitlements: dict | None = None
    limits: list[Limit] = field(default_factory=list)
    ratelimit: LimitDecision | None = None
    quota: QuotaDecision | None = None
    block: Block | None = None


@dataclass(frozen=True)
class _Version:
    api_version: ApiVersion
    router: Router[Endpoint]


class EndpointCatalog:
    """Every API version's router, rebuilt at most every CATALOG_REFRESH_SECONDS.

    Versions past their sunset stay loaded, so a call to one is told `endpoint_sunset`
    (410) rather than `endpoint_unknown`; calls that name no version match the newest
    version of each product that is not past its sunset."""

    def __init__(self, refresh_seconds: float = CATALOG_REFRESH_SECONDS):
        self._refresh_seconds = refresh_seconds
        self._loaded_at = -1e9
        self._versions: list[_Version] = []
        self._newest: list[_Version] = []  # the newest live version of each product
        self._sunset: list[_Version] = []  # versions past their sunset at the last load
        self._labels: dict = {}  # api version id → "product/version"
        self._lock = threading.Lock()

    def versions(self) -> list[_Version]:
        if time.monotonic() - self._loaded_at > self._refresh_seconds:
            with self._lock:
                if time.monotonic() - self._loaded_at > self._refresh_seconds:
                    now = timezone.now()
                    self._versions = self._load()
                    self._sunset = [v for v in self._versions if _is_sunset(v, now)]
                    newest: dict[str, _Version] = {}
                    for version in self._versions:  # ordered newest first per product
                        if not _is_sunset(version, now):
                            newest.setdefault(version.api_version.product.code, version)
                    self._newest = list(newest.values())
                    self._labels = {
                        v.api_version.id: f"{v.api_version.product.code}/{v.api_version.version}"
                        for v in self._versions
                    }
                    self._loaded_at = time.monotonic()
        return self._versions

    def api_label(self, api_version_id) -> str:
        """ "documents/v1" for a loaded version (no query: kept from the last load)."""
        return self._labels.get(api_version_id, "")

    def _load(self) -> list[_Version]:
        loaded = []
        for version in (
            ApiVersion.objects.select_related("product")
            .prefetch_related("endpoints")
            .order_by("product__code", "-created_at")
        ):
            router = Router((e.method, e.path_template, e) for e in version.endpoints.all())
            loaded.append(_Version(version, router))
        return loaded

    def match(self, inp: VerifyInput) -> tuple[str, Endpoint | None]:
        """("ok", endpoint), ("endpoint_sunset", endpoint) or (reason code, None)."""
        every = self.versions()
        sunset = self._sunset
        if inp.product:
            every = [v for v in every if v.api_version.product.code == inp.product]
            sunset = [v for v in sunset if v.api_version.product.code == inp.product]
            if inp.version:
                every = [v for v in every if v.api_version.version == inp.version]
                sunset = [v for v in sunset if v.api_version.version == inp.version]
                candidates = every
            else:  # the newest live version of that product
                candidates = [v for v in self._newest if v.api_version.product.code == inp.product]
        else:
            candidates = self._newest
        code, endpoint = _match_in(candidates, inp)
        if code == "endpoint_unknown" and sunset:
            # Not in a live version: was it in one that has reached its sunset?
            _code, sunset_endpoint = _match_in([v for v in sunset if v not in candidates], inp)
            if sunset_endpoint is not None:
                return "endpoint_sunset", sunset_endpoint
        if endpoint is not None and any(
            v.api_version.id == endpoint.api_version_id for v in sunset
        ):
            return "endpoint_sunset", endpoint
        return code, endpoint


def _is_sunset(version: _Version, now: datetime) -> bool:
    sunset_at = version.api_version.sunset_at
    return sunset_at is not None and sunset_at <= now


def _match_in(candidates: list[_Version], inp: VerifyInput) -> tuple[str, Endpoint | None]:
    matches = []
    for version in candidates:
        path = without_base_path(inp.path, version.api_version.base_path)
        endpoint = version.router.match(inp.method, path)
        if endpoint is not None:
            matches.append(endpoint)
    if not matches:
        return "endpoint_unknown", None
    if len(matches) > 1:
        return "endpoint_ambiguous", None
    return "ok", matches[0]


def rate_limits_for(key: CachedKey, entitlements: dict) -> list[Limit]:
    """The plan's limits for this key, per key, project or org; test and live apart."""
    subjects = {"key": key.id, "project": key.project_id, "org": key.organization_id}
    limits = []
    for rule in entitlements.get("rate_limits", []):
        scope = rule.get("scope", "key")
        subject = f"{key.environment}:{scope}"
        limits.append(
            Limit(
                key=limit_key(
                    key.organization_id,
                    subject,
                    subjects[scope],
                    rule["limit"],
                    rule["window_seconds"],
                ),
                limit=rule["limit"],
                window_seconds=rule["window_seconds"],
                burst=rule.get("burst"),
            )
        )
    return limits


def current_period(entitlements: dict, now: datetime) -> tuple[datetime, datetime]:
    """The org's billing period containing `now`, from its cached entitlements (no query)."""
    anchor = entitlements.get("billing_anchor")
    if anchor is not None:
        return period_containing(
            anchor,
            entitlements.get("interval", "month"),
            now,
            zone=entitlements.get("billing_zone", "UTC"),
            calendar=entitlements.get("calendar_billing", False),
        )
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, start + relativedelta(months=1)


def quotas_for(
    key: CachedKey, endpoint: Endpoint, entitlements: dict, period_start: datetime
) -> list[Quota]:
    """The plan's quotas this call counts against: `requests`, and the endpoint's meter."""
    meters = {"requests", endpoint.meter_code} - {""}
    return [
        Quota(
            meter=rule["meter"],
            limit=int(Decimal(rule["limit"])),
            behaviour=rule.get("behaviour", "hard"),
            key=quota_key(key.organization_id, rule["meter"], period_start),
        )
        for rule in entitlements.get("quotas", [])
        if rule["meter"] in meters
    ]


def _ledger_usage(organization_id: str, meter_code: str, start: datetime, end: datetime) -> int:
    meter = Meter.objects.filter(code=meter_code).first()
    if meter is None:
        return 0
    [total] = usage_aggregate(
        UsageFilter(organization_id=organization_id, meter=meter, start=start, end=end)
    )
    return int(total["quantity"] or 0)


ENTITLEMENTS_SECONDS = 5.0


class _LocalEntitlements:
    """Entitlements per org kept in-process for a few seconds and read without copying:
    the shared cache costs a Redis round trip and a deep copy per call. A plan change
    reaches the gate within `seconds`."""

    def __init__(self, seconds: float):
        self._seconds = seconds
        self._entries: dict[str, tuple[dict, float]] = {}

    def get(self, organization_id: str) -> dict:
        found = self._entries.get(organization_id)
        now = time.monotonic()
        if found is not None and now - found[1] < self._seconds:
            return found[0]
        entitlements = entitlements_for(organization_id)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[organization_id] = (entitlements, now)
        return entitlements


class Gate:
    def __init__(
        self,
        *,
        keys: KeyCache,
        limiter: RateLimiter,
        catalog: EndpointCatalog,
        quotas: QuotaCounter,
        redis_client,
        entitlements_seconds: float = ENTITLEMENTS_SECONDS,
        blocks: BlockList | None = None,
        flags: FlagCache | None = None,
    ):
        self.keys = keys
        self.limiter = limiter
        self.catalog = catalog
        self.quotas = quotas
        self.redis = redis_client
        self.entitlements = _LocalEntitlements(entitlements_seconds)
        self.blocks = blocks or BlockList(redis_client)
        self.flags = flags or FlagCache(redis_client)

    def decide(self, inp: VerifyInput, now: datetime | None = None) -> Decision:
        decision = self._decide(inp, now)
        if not decision.allowed and decision.code in COUNTED_DENIALS:
            self._count_denial(decision.key)
        return decision

    def _count_denial(self, key: CachedKey) -> None:
        """A key denied more than the threshold in a minute is blocked for a while (GATE-5):
        misbehaving clients stop costing every check above. One INCR per denial only."""
        threshold = settings.GATE_AUTO_BLOCK_DENIALS_PER_MINUTE
        if not threshold:
            return
        counter = f"tg:denials:{{{key.organization_id}}}:{key.id}:{int(time.time() // 60)}"
        pipe = self.redis.pipeline()
        pipe.incr(counter)
        pipe.expire(counter, 120)
        count = pipe.execute()[0]
        if count == threshold + 1:  # exactly once, on the call that crosses it
            from keys.services import block_create

            api_key = ApiKey.objects.get(pk=key.id)
            block_create(
                actor=Actor.system("gate"),
                api_key=api_key,
                reason_code=Block.Reason.AUTOMATIC,
                reason=f"More than {threshold} denied calls in a minute.",
                expires_at=timezone.now() + timedelta(seconds=settings.GATE_AUTO_BLOCK_SECONDS),
            )

    def _report_exhaustion(
        self, key: CachedKey, state: QuotaState, start: datetime, end: datetime, now: datetime
    ) -> None:
        """A hard quota's first refusal in a period goes on the crossings stream (billing
        emits `quota.exhausted`). Deny path only: the process remembers what it reported,
        and a SET NX shared by all gates keeps it to one entry per quota and period."""
        flag = (
            f"tg:quota-exhausted:{{{key.organization_id}}}:{state.quota.meter}:"
            f"{int(start.timestamp())}:{state.quota.limit}"
        )
        if flag in _exhaustions_reported:
            return
        if len(_exhaustions_reported) > 100_000:
            _exhaustions_reported.clear()
        try:
            # The entry first, then the flag: a failure in between may report twice (the
            # consumer de-duplicates), never zero times. A Redis error here never fails the
            # decision, which is a denial either way.
            if not self.redis.exists(flag):
                self.redis.xadd(
                    CROSSINGS_KEY,
                    {
                        "organization": key.organization_id,
                        "meter": state.quota.meter,
                        "behaviour": "hard",
                        "period_start": start.isoformat(),
                        "period_end": end.isoformat(),
                        "limit": str(state.quota.limit),
                        "used": str(state.before),
                        "at": now.isoformat(),
                    },
                )
                self.redis.set(flag, 1, ex=40 * 24 * 3600)
        except redis.RedisError:
            logger.exception("could not report the exhaustion of quota %s", flag)
            return
        _exhaustions_reported.add(flag)

    def _decide(self, inp: VerifyInput, now: datetime | None) -> Decision:
        if not key_is_well_formed(inp.key or ""):
            return Decision(False, "key_malformed")
        key = self.keys.get(inp.key)
        if key is None:
            return Decision(False, "key_invalid")
        status = key.status_at(now or timezone.now())
        if status == "revoked":
            return Decision(False, "key_revoked", key)
        if status == "expired":
            return Decision(False, "key_expired", key)
        if key.allowed_cidrs and not ip_in_cidrs(inp.ip, key.allowed_cidrs):
            return Decision(False, "ip_not_allowed", key)
        code, endpoint = self.catalog.match(inp)
        if code != "ok":
            return Decision(False, code, key, endpoint)
        if endpoint.sunset_at is not None and endpoint.sunset_at <= (now or timezone.now()):
            return Decision(False, "endpoint_sunset", key, endpoint)
        if endpoint.group not in key.scopes:
            return Decision(False, "scope_missing", key, endpoint)
        entitlements = self.entitlements.get(key.organization_id)
        if endpoint.group not in entitlements.get("endpoint_groups", []):
            return Decision(False, "endpoint_not_in_plan", key, endpoint, entitlements)
        block = self.blocks.find(key.id, inp.ip, now)
        if block is not None:
            return Decision(False, "blocked", key, endpoint, entitlements, block=block)
        # Billing's verdicts on the organization (test keys are never charged, so never cut).
        if key.environment == "live":
            flags = self.flags.get(key.organization_id)
            for flag in (PAYMENT_PAST_DUE, SPEND_CAP_REACHED):
                if flag in flags:
                    return Decision(False, flag, key, endpoint, entitlements)
        limits = rate_limits_for(key, entitlements)
        moment = now or timezone.now()
        # Sandbox traffic never counts against live quotas; no quotas, no period to work out.
        quotas, start = [], None
        if key.environment == "live" and entitlements.get("quotas"):
            start, end = current_period(entitlements, moment)
            quotas = quotas_for(key, endpoint, entitlements, start)
        # The call's usage rides in the last script of the decision: one round trip.
        events = call_events(
            request_id=inp.request_id or new_request_id(),
            key_id=key.id,
            environment=key.environment,
            endpoint_label=f"{endpoint.method} {endpoint.path_template}",
            meter_code=endpoint.meter_code,
            cost=inp.cost,
            at=moment,
            api=self.catalog.api_label(endpoint.api_version_id),
            app=key.app_id,
        )
        usage = (ensure_registered(self.redis, key.organization_id), json.dumps(events))
        ratelimit = self.limiter.check(limits, usage=None if quotas else usage)
        if not ratelimit.allowed:
            return Decision(False, "rate_limited", key, endpoint, entitlements, limits, ratelimit)
        quota = None
        if quotas:
            quota = self.quotas.check(
                quotas,
                inp.cost,
                usage_so_far=lambda q: _ledger_usage(key.organization_id, q.meter, start, moment),
                usage=usage,
            )
            if not quota.allowed:
                if quota.denied_by.remaining == 0:  # used up, not just too small for this cost
                    self._report_exhaustion(key, quota.denied_by, start, end, moment)
                return Decision(
                    False, "quota_exhausted", key, endpoint, entitlements, limits, ratelimit, quota
                )
            for state in quota.states:
                if state.quota.behaviour == "soft" and state.crossed:
                    record_crossing(
                        self.redis,
                        organization_id=key.organization_id,
                        meter=state.quota.meter,
                        period_start=start,
                        limit=state.quota.limit,
                    )
        elif not limits:
            record_call(self.redis, key.organization_id, events)  # no script ran to write it
        return Decision(True, "ok", key, endpoint, entitlements, limits, ratelimit, quota)
