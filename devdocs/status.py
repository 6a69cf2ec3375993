"""The public status page's content (DOCS-6): components, their measured health, incidents.

Everything the page and `/status.json` show is one `StatusSnapshot` of plain values (no
model instances), built here and cached for STATUS_CACHE_SECONDS, so the page and the
feed always agree and a burst of visitors costs one computation per half-minute.

Components: one per public API product, measured over the endpoints of every version of it
not past its sunset (an outage of v1 matters to the customers still on v1), split into parts
by endpoint *group* (every endpoint has exactly one group, while tags may be none or
several, so groups never count a call twice); plus one "Sandbox" component measured from
test-environment calls, split by product, which is shown but never sets the page's overall
state (that is about the live API; test keys are free). Private products never appear, and
neither do incidents that affect only private products.
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from common.errors import NotFound
from devdocs.health import WINDOWS, Health, HealthReport, health_reports
from devdocs.models import Incident, IncidentUpdate
from keys.models import ApiProduct, ApiVersion, Endpoint
from portal.audit import Actor, audit_record

HISTORY_DAYS = 90
CACHE_KEY = "devdocs:status:snapshot:v2"  # (build started at, StatusSnapshot)
CLEARED_KEY = "devdocs:status:cleared"  # time of the last status_cache_clear()
REBUILD_LOCK_KEY = "devdocs:status:rebuilding"
DEFAULT_CACHE_SECONDS = 30
STALE_SECONDS = 300  # how long past its freshness a snapshot may be served during a rebuild
LOCK_SECONDS = 60  # a rebuilder that died frees the lock after this
WAIT_SECONDS = 5.0  # nothing cached: how long to wait for another process's rebuild

# Worst last: an index in this tuple orders states.
INDICATORS = ("operational", "degraded", "partial_outage", "major_outage")
INDICATOR_LABELS = {
    "operational": "All systems operational",
    "degraded": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
COMPONENT_LABELS = {**INDICATOR_LABELS, "operational": "Operational"}
IMPACT_INDICATOR = {
    Incident.Impact.NONE: "operational",
    Incident.Impact.MINOR: "degraded",
    Incident.Impact.MAJOR: "partial_outage",
    Incident.Impact.CRITICAL: "major_outage",
}
# The last hour's error rate, from the gate's measurements: (at least, indicator), worst
# first. Below MIN_CALLS_FOR_STATE calls a few failures say little, so they set nothing.
ERROR_RATE_INDICATORS = ((0.25, "major_outage"), (0.05, "partial_outage"), (0.01, "degraded"))
MIN_CALLS_FOR_STATE = 20
# Day bars: (uptime at least, level) best first; a day without calls is "none".
DAY_LEVELS = ((0.999, "ok"), (0.99, "minor"), (0.95, "major"))


def worst(*indicators: str) -> str:
    return max(indicators, key=INDICATORS.index, default="operational")


def measured_indicator(health: Health) -> str:
    """What the last hour's error rate alone says about a component."""
    if health.calls < MIN_CALLS_FOR_STATE or health.error_rate is None:
        return "operational"
    for threshold, indicator in ERROR_RATE_INDICATORS:
        if health.error_rate >= threshold:
            return indicator
    return "operational"


def day_level(health: Health) -> str:
    uptime = health.uptime
    if uptime is None:
        return "none"
    for threshold, level in DAY_LEVELS:
        if uptime >= threshold:
            return level
    return "outage"


# --- The snapshot: plain values only (cached, and turned into JSON) --------------------------
@dataclass(frozen=True)
class Figures:
    """One window's figures. `uptime` is a fraction (0..1), None when there were no calls."""

    calls: int
    errors: int
    uptime: float | None
    p50_ms: float | None
    p95_ms: float | None

    @property
    def uptime_percent(self) -> float | None:
        return None if self.uptime is None else self.uptime * 100

    @classmethod
    def of(cls, health: Health) -> "Figures":
        return cls(health.calls, health.errors, health.uptime, health.p50, health.p95)


@dataclass(frozen=True)
class Day:
    date: datetime
    calls: int
    errors: int
    uptime: float | None
    level: str

    @property
    def uptime_percent(self) -> float | None:
        return None if self.uptime is None else self.uptime * 100


@dataclass(frozen=True)
class Part:
    code: str
    name: str
    endpoints: list[str]  # "GET /documents/{id}"
    windows: dict[str, Figures]


@dataclass(frozen=True)
class Component:
    code: str
    name: str
    kind: str  # "product" or "sandbox"
    environment: str
    version: str | None  # the newest live version (None for the sandbox)
    indicator: str
    windows: dict[str, Figures]
    days: list[Day]
    parts: list[Part]
    versions: list[str] = field(default_factory=list)  # every live version measured, newest first

    @property
    def indicator_label(self) -> str:
        return COMPONENT_LABELS[self.indicator]


@dataclass(frozen=True)
class IncidentNote:
    status: str
    body: str
    posted_at: datetime


@dataclass(frozen=True)
class IncidentView:
    id: str
    title: str
    status: str
    impact: str
    started_at: datetime
    resolved_at: datetime | None
    affected: list[str]  # public product names and endpoints; empty: the whole platform
    affected_products: list[str]  # codes of the public products it touches
    updates: list[IncidentNote] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.resolved_at is None and self.status != Incident.Status.RESOLVED

    @property
    def platform_wide(self) -> bool:
        return not self.affected


@dataclass(frozen=True)
class StatusSnapshot:
    indicator: str
    components: list[Component]
    active_incidents: list[IncidentView]
    history: list[IncidentView]
    generated_at: datetime

    @property
    def description(self) -> str:
        return INDICATOR_LABELS[self.indicator]


# --- Incidents --------------------------------------------------------------------------------
def _incident_queryset():
    return Incident.objects.prefetch_related(
        Prefetch("products", queryset=ApiProduct.objects.order_by("name")),
        Prefetch(
            "endpoints",
            queryset=Endpoint.objects.select_related("api_version__product").order_by(
                "path_template", "method"
            ),
        ),
        Prefetch("updates", queryset=IncidentUpdate.objects.order_by("-posted_at")),
    )


def _incident_view(incident: Incident) -> IncidentView | None:
    """The public view of an incident; None when it touches only private products."""
    products = list(incident.products.all())
    endpoints = list(incident.endpoints.all())
    if not products and not endpoints:
        public_products, public_endpoints = [], []
    else:
        public_products = [product for product in products if not product.private]
        public_endpoints = [
            endpoint for endpoint in endpoints if not endpoint.api_version.product.private
        ]
        if not public_products and not public_endpoints:
            return None
    affected = [product.name for product in public_products] + [
        f"{endpoint.api_version.product.name} {endpoint.api_version.version}: "
        f"{endpoint.method} {endpoint.path_template}"
        for endpoint in public_endpoints
    ]
    codes = {product.code for product in public_products} | {
        endpoint.api_version.product.code for endpoint in public_endpoints
    }
    return IncidentView(
        id=str(incident.id),
        title=incident.title,
        status=incident.status,
        impact=incident.impact,
        started_at=incident.started_at,
        resolved_at=incident.resolved_at,
        affected=affected,
        affected_products=sorted(codes),
        updates=[
            IncidentNote(update.status, update.body, update.posted_at)
            for update in incident.updates.all()
        ],
    )


def incident_views(*, now: datetime) -> tuple[list[IncidentView], list[IncidentView]]:
    """(active incidents, newest first; resolved ones of the last HISTORY_DAYS days)."""
    since = now - timedelta(days=HISTORY_DAYS)
    active, history = [], []
    open_incidents = (
        _incident_queryset()
        .filter(resolved_at__isnull=True)
        .exclude(status=Incident.Status.RESOLVED)
    )
    for incident in open_incidents.order_by("-started_at"):
        view = _incident_view(incident)
        if view is not None:
            active.append(view)
    recent = _incident_queryset().filter(resolved_at__gte=since).order_by("-started_at")
    for incident in recent:
        view = _incident_view(incident)
        if view is not None:
            history.append(view)
    return active, history


def incident_get(*, incident_id) -> IncidentView:
    """One incident's public view; a hidden (private-only) one is as missing as an unknown."""
    try:
        incident = _incident_queryset().get(pk=incident_id)
    except (Incident.DoesNotExist, ValueError, ValidationError):
        raise NotFound("No such incident.") from None
    view = _incident_view(incident)
    if view is None:
        raise NotFound("No such incident.")
    return view


# --- Components ------------------------------------------------------------------------------
@dataclass
class _LiveProduct:
    """A public product and its versions not past their sunset, newest first."""

    product: ApiProduct
    versions: list[ApiVersion]

    @property
    def code(self) -> str:
        return self.product.code

    @property
    def endpoints(self) -> list[Endpoint]:
        return [endpoint for version in self.versions for endpoint in version.endpoints.all()]


def _live_products(now: datetime) -> list[_LiveProduct]:
    """Each public product with every version that has not reached its sunset.

    All of them, not only the newest: customers still on an older version are served by
    it, and its outage is as real to them as one of the newest.
    """
    products: dict[str, _LiveProduct] = {}
    versions = (
        ApiVersion.objects.filter(product__private=False)
        .select_related("product")
        .prefetch_related(
            Prefetch("endpoints", queryset=Endpoint.objects.order_by("path_template", "method"))
        )
        .order_by("product__name", "product__code", "-created_at")
    )
    for version in versions:
        if version.sunset_at is not None and version.sunset_at <= now:
            continue
        products.setdefault(
            version.product.code, _LiveProduct(version.product, [])
        ).versions.append(version)
    return list(products.values())


def _figures(report: HealthReport) -> dict[str, Figures]:
    return {window.code: Figures.of(report.windows[window.code]) for window in WINDOWS}


def _days(report: HealthReport) -> list[Day]:
    return [
        Day(day, health.calls, health.errors, health.uptime, day_level(health))
        for day, health in report.days
    ]


def _incident_indicator(incidents: list[IncidentView], product_code: str | None) -> str:
    """The worst impact of the active incidents that touch this product (or everything)."""
    return worst(
        *(
            IMPACT_INDICATOR[incident.impact]
            for incident in incidents
            if incident.platform_wide
            or product_code is None
            or product_code in incident.affected_products
        )
    )


def _group_name(group: str) -> str:
    return group.replace("_", " ").replace("-", " ").capitalize()


def status_snapshot_build(*, now: datetime | None = None) -> StatusSnapshot:
    now = now or timezone.now()
    active, history = incident_views(now=now)
    products = _live_products(now)

    live_groups: dict[str, list[str]] = {}
    test_groups: dict[str, list[str]] = {}
    all_live: list[str] = []
    for product in products:
        code = product.code
        endpoint_ids = [str(endpoint.id) for endpoint in product.endpoints]
        live_groups[f"product:{code}"] = endpoint_ids
        test_groups[f"product:{code}"] = endpoint_ids
        all_live += endpoint_ids
        for endpoint in product.endpoints:
            live_groups.setdefault(f"group:{code}:{endpoint.group}", []).append(str(endpoint.id))
    live_groups["all"] = all_live
    test_groups["all"] = all_live
    live = health_reports(groups=live_groups, environment="live", now=now)
    test = health_reports(groups=test_groups, environment="test", now=now)

    components = []
    for product in products:
        code = product.code
        report = live[f"product:{code}"]
        # "GET /documents/{id}" once per group even when several versions have it.
        groups: dict[str, dict[str, None]] = {}  # an ordered set of "METHOD /path"
        for endpoint in product.endpoints:
            label = f"{endpoint.method} {endpoint.path_template}"
            groups.setdefault(endpoint.group, {})[label] = None
        parts = [
            Part(
                code=group,
                name=_group_name(group),
                endpoints=list(endpoints),
                windows=_figures(live[f"group:{code}:{group}"]),
            )
            for group, endpoints in sorted(groups.items())
        ]
        components.append(
            Component(
                code=code,
                name=product.product.name,
                kind="product",
                environment="live",
                version=product.versions[0].version,
                versions=[version.version for version in product.versions],
                indicator=worst(
                    _incident_indicator(active, code), measured_indicator(report.last_hour)
                ),
                windows=_figures(report),
                days=_days(report),
                parts=parts,
            )
        )
    # The overall state is about the live API: computed before the Sandbox joins the list.
    # Test keys are free, so whatever they make the sandbox do must not turn the page red.
    indicator = worst(
        _incident_indicator(active, None),
        measured_indicator(live["all"].last_hour),
        *(component.indicator for component in components),
    )
    sandbox = test["all"]
    if products:  # the sandbox serves the public products: none, no sandbox
        components.append(
            Component(
                code="sandbox",
                name="Sandbox",
                kind="sandbox",
                environment="test",
                version=None,
                indicator=worst(
                    _incident_indicator([i for i in active if i.platform_wide], None),
                    measured_indicator(sandbox.last_hour),
                ),
                windows=_figures(sandbox),
                days=_days(sandbox),
                parts=[
                    Part(
                        code=product.code,
                        name=" ".join(
                            [product.product.name, ", ".join(v.version for v in product.versions)]
                        ),
                        endpoints=[],
                        windows=_figures(test[f"product:{product.code}"]),
                    )
                    for product in products
                ],
            )
        )
    return StatusSnapshot(
        indicator=indicator,
        components=components,
        active_incidents=active,
        history=history,
        generated_at=now,
    )


def _cache_seconds() -> int:
    return int(getattr(settings, "STATUS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))


def status_snapshot(*, clock: float | None = None) -> StatusSnapshot:
    """The snapshot the page and the feed show, at most STATUS_CACHE_SECONDS old.

    No stampede: when the cached snapshot is stale, one process rebuilds it (the one that
    wins `cache.add` of REBUILD_LOCK_KEY) while the others keep serving the stale one, which
    the cache holds STALE_SECONDS longer than it is fresh. Only with nothing cached at all
    (first start, or just after an incident changed) do the others wait for the rebuild, up
    to WAIT_SECONDS, before building their own. `clock` is the wall-clock time of the read
    (time.time() when not given).
    """
    seconds = _cache_seconds()
    if seconds <= 0:
        return status_snapshot_build()
    clock = time.time() if clock is None else clock
    entry = _cached(clock, seconds)
    if entry is not None and entry.fresh:
        return entry.snapshot
    if cache.add(REBUILD_LOCK_KEY, clock, LOCK_SECONDS):
        try:
            return _rebuild(seconds)
        finally:
            cache.delete(REBUILD_LOCK_KEY)
    if entry is not None:
        return entry.snapshot  # stale by a few seconds, while the other process rebuilds
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
        entry = _cached(clock, seconds)
        if entry is not None:
            return entry.snapshot
    return _rebuild(seconds)


@dataclass(frozen=True)
class _Entry:
    snapshot: StatusSnapshot
    fresh: bool


def _cached(clock: float, seconds: int) -> _Entry | None:
    """The cached snapshot and whether it is still fresh: younger than `seconds`, and not
    built before the last status_cache_clear() (a build that started before an incident was
    saved must not hide it for another half-minute)."""
    values = cache.get_many([CACHE_KEY, CLEARED_KEY])
    stored = values.get(CACHE_KEY)
    if not isinstance(stored, tuple) or len(stored) != 2:
        return None
    started, snapshot = stored
    fresh = clock < started + seconds and started >= values.get(CLEARED_KEY, 0)
    return _Entry(snapshot, fresh)


def _rebuild(seconds: int) -> StatusSnapshot:
    started = time.time()
    snapshot = status_snapshot_build()
    cache.set(CACHE_KEY, (started, snapshot), seconds + STALE_SECONDS)
    return snapshot


def status_cache_clear() -> None:
    """After an incident changes, so the operator's words show at once."""
    cache.set(CLEARED_KEY, time.time(), None)
    cache.delete(CACHE_KEY)


# --- The JSON feed ----------------------------------------------------------------------------
def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _figures_json(figures: Figures) -> dict:
    return {
        "calls": figures.calls,
        "errors": figures.errors,
        "uptime_percent": _round(figures.uptime_percent, 3),
        "p50_ms": _round(figures.p50_ms, 1),
        "p95_ms": _round(figures.p95_ms, 1),
    }


def incident_json(incident: IncidentView, *, site_url: str) -> dict:
    return {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status,
        "impact": incident.impact,
        "started_at": _iso(incident.started_at),
        "resolved_at": _iso(incident.resolved_at),
        "affected": incident.affected,
        "affected_products": incident.affected_products,
        "url": f"{site_url}/status/incidents/{incident.id}",
        "updates": [
            {"status": note.status, "body": note.body, "posted_at": _iso(note.posted_at)}
            for note in incident.updates
        ],
    }


def status_json(snapshot: StatusSnapshot, *, site_url: str) -> dict:
    """The feed: the same content as the page, in the shape documented in docs/status.md."""
    return {
        "status": {"indicator": snapshot.indicator, "description": snapshot.description},
        "generated_at": _iso(snapshot.generated_at),
        "windows": [window.code for window in WINDOWS],
        "components": [
            {
                "code": component.code,
                "name": component.name,
                "kind": component.kind,
                "environment": component.environment,
                "version": component.version,
                "versions": component.versions,
                "status": component.indicator,
                "windows": {
                    code: _figures_json(figures) for code, figures in component.windows.items()
                },
                "days": [
                    {
                        "date": day.date.date().isoformat(),
                        "calls": day.calls,
                        "errors": day.errors,
                        "uptime_percent": _round(day.uptime_percent, 3),
                    }
                    for day in component.days
                ],
                "parts": [
                    {
                        "code": part.code,
                        "name": part.name,
                        "endpoints": part.endpoints,
                        "windows": {
                            code: _figures_json(figures) for code, figures in part.windows.items()
                        },
                    }
                    for part in component.parts
                ],
            }
            for component in snapshot.components
        ],
        "incidents": [
            incident_json(incident, site_url=site_url) for incident in snapshot.active_incidents
        ],
        "history": [incident_json(incident, site_url=site_url) for incident in snapshot.history],
    }


# --- Writes (admin): an incident follows its newest update -----------------------------------
def incident_sync_status(*, actor: Actor, incident: Incident) -> Incident:
    """Move the incident to its newest update's status; set or clear resolved_at to match.

    Called after the operator saves updates in admin, so the page never shows an incident
    "investigating" under an update that says it is resolved.
    """
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        newest = incident.updates.order_by("-posted_at").first()
        before = (incident.status, incident.resolved_at)
        if newest is not None:
            incident.status = newest.status
            if newest.status == Incident.Status.RESOLVED:
                incident.resolved_at = incident.resolved_at or newest.posted_at
            else:
                incident.resolved_at = None
        else:
            incident_align_resolved(incident=incident, now=timezone.now())
        if (incident.status, incident.resolved_at) != before:
            incident.save(update_fields=["status", "resolved_at"])
            audit_record(
                actor=actor,
                action="incident.status_changed",
                organization=None,
                target=incident,
                changes={"status": incident.status, "resolved_at": _iso(incident.resolved_at)},
            )
    status_cache_clear()
    return incident


def incident_align_resolved(*, incident: Incident, now: datetime) -> None:
    """resolved_at is set exactly when the status is resolved (not saved here)."""
    if incident.status == Incident.Status.RESOLVED:
        incident.resolved_at = incident.resolved_at or now
    else:
        incident.resolved_at = None
