"""The gate's own measurements of the provider's API: recording call outcomes, reading uptime.

The gate decides before a call; whatever sits in front of the provider's API (the Python
middleware, a gateway, the sandbox) sees the answer afterwards and reports its status code
and duration. Outcomes are kept per endpoint, environment and UTC hour in
`devdocs.models.HealthBucket`: a count of calls, a count of errors and a latency histogram
over fixed bounds, so any window's uptime and percentiles come from adding buckets, and the
table grows with endpoints x hours, never with traffic.

An *error* is a 5xx answer or no answer at all (status 0: the caller timed out or the
connection broke). 4xx answers are the client's mistake and count as served.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, CharField, F, IntegerField, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Substr, TruncDay

from devdocs.models import HealthBucket

# Upper bounds (ms, inclusive) of the latency buckets; one more bucket holds the rest (+inf).
# Fixed for good: stored histograms are positional, so changing these needs a migration.
BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BUCKETS = len(BOUNDS_MS) + 1
NO_ANSWER = 0  # status of a call that got no answer (timeout, broken connection)
ENVIRONMENTS = ("live", "test")


@dataclass(frozen=True)
class Outcome:
    endpoint_id: str  # keys.models.Endpoint id (str of UUID)
    environment: str  # "live" or "test"
    status: int  # HTTP status of the answer; 0 when there was none
    duration_ms: float
    at: datetime  # aware


def is_error(status: int) -> bool:
    return status == NO_ANSWER or status >= 500


def bucket_index(duration_ms: float) -> int:
    for index, bound in enumerate(BOUNDS_MS):
        if duration_ms <= bound:
            return index
    return len(BOUNDS_MS)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class _Tally:
    calls: int = 0
    errors: int = 0
    latency_ms_total: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)


def _merge(stored: Sequence[int] | None, added: Sequence[int]) -> list[int]:
    """Element-wise sum; a short or missing stored histogram counts as zeros."""
    stored = list(stored or [])
    stored += [0] * (BUCKETS - len(stored))
    return [int(a) + int(b) for a, b in zip(stored, added, strict=False)]


def record_outcomes(outcomes: Iterable[Outcome]) -> int:
    """Add outcomes to their hourly buckets; returns how many were recorded.

    Each outcome's endpoint must exist (the API checks; the sandbox has the row in hand).
    A bad outcome (naive time, unknown environment, negative or non-finite duration)
    raises ValueError before anything is written.

    Outcomes are added up in Python first, so a batch costs a few statements per bucket,
    not per call. Concurrency: the bucket rows are first created empty (INSERT ... ON
    CONFLICT DO NOTHING, committed at once, in a fixed order), then, in one transaction and
    in the same order, each row is incremented with `SET calls = calls + x`. That UPDATE
    takes the row lock (PostgreSQL) or the database write lock (SQLite) before the
    histogram is read back and merged, so two processes recording the same hour serialise
    on the row and neither loses counts; the fixed order means they cannot deadlock.
    """
    tallies: dict[tuple[str, str, datetime], _Tally] = {}
    recorded = 0
    for outcome in outcomes:
        if outcome.at.tzinfo is None:
            raise ValueError("Outcome.at must be timezone-aware.")
        if outcome.environment not in ENVIRONMENTS:
            raise ValueError(f"Outcome.environment must be one of {ENVIRONMENTS}.")
        try:
            duration = float(outcome.duration_ms)
        except (OverflowError, TypeError, ValueError):  # an int of hundreds of digits
            duration = math.nan
        if not math.isfinite(duration) or duration < 0:
            raise ValueError("Outcome.duration_ms must be a finite number >= 0.")
        key = (str(outcome.endpoint_id), outcome.environment, hour_of(outcome.at))
        tally = tallies.setdefault(key, _Tally())
        tally.calls += 1
        tally.errors += int(is_error(int(outcome.status)))
        tally.latency_ms_total += duration
        tally.histogram[bucket_index(duration)] += 1
        recorded += 1
    if not tallies:
        return 0
    order = sorted(tallies)
    HealthBucket.objects.bulk_create(
        [
            HealthBucket(
                endpoint_id=endpoint_id, environment=environment, hour=hour, histogram=[0] * BUCKETS
            )
            for endpoint_id, environment, hour in order
        ],
        ignore_conflicts=True,
    )
    with transaction.atomic():
        for endpoint_id, environment, hour in order:
            tally = tallies[(endpoint_id, environment, hour)]
            HealthBucket.objects.filter(
                endpoint_id=endpoint_id, environment=environment, hour=hour
            ).update(
                calls=F("calls") + tally.calls,
                errors=F("errors") + tally.errors,
                latency_ms_total=F("latency_ms_total") + tally.latency_ms_total,
            )
        # Our UPDATEs hold the locks now: the histograms read here cannot change under us.
        rows = list(
            HealthBucket.objects.filter(
                endpoint_id__in={key[0] for key in order},
                environment__in={key[1] for key in order},
                hour__in={key[2] for key in order},
            ).only("id", "endpoint_id", "environment", "hour", "histogram")
        )
        changed = []
        for row in rows:
            tally = tallies.get((str(row.endpoint_id), row.environment, hour_of(row.hour)))
            if tally is None:  # another bucket the IN lists happened to cover
                continue
            row.histogram = _merge(row.histogram, tally.histogram)
            changed.append(row)
        HealthBucket.objects.bulk_update(changed, ["histogram"])
    return recorded


# --- Reading -------------------------------------------------------------------------------
@dataclass
class Health:
    """Calls, errors and latency of some endpoints over some span of hours."""

    calls: int = 0
    errors: int = 0
    latency_ms_total: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, calls: int, errors: int, latency_ms_total: float, histogram) -> None:
        self.calls += calls
        self.errors += errors
        self.latency_ms_total += latency_ms_total
        if histogram is not None:  # None: figures without latency detail (the day strip)
            self.histogram = _merge(histogram, self.histogram)

    @property
    def has_data(self) -> bool:
        return self.calls > 0

    @property
    def uptime(self) -> float | None:
        """Share of calls that were not errors (0..1); None without calls, never 100% of
        nothing."""
        if self.calls <= 0:
            return None
        return (self.calls - self.errors) / self.calls

    @property
    def error_rate(self) -> float | None:
        return None if self.calls <= 0 else self.errors / self.calls

    def percentile(self, fraction: float) -> float | None:
        return histogram_percentile(self.histogram, fraction)

    @property
    def p50(self) -> float | None:
        return self.percentile(0.50)

    @property
    def p95(self) -> float | None:
        return self.percentile(0.95)


def histogram_percentile(histogram: Sequence[int], fraction: float) -> float | None:
    """The latency (ms) below which `fraction` of calls fell, estimated from the buckets.

    Linear interpolation inside the bucket holding the rank, as Prometheus's
    histogram_quantile does; a rank in the open last bucket reports its lower bound (the
    answer is then "more than 10 s"). None for an empty histogram.
    """
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    counts = [int(count) for count in histogram][:BUCKETS]
    total = sum(counts)
    if total <= 0:
        return None
    rank = fraction * total
    cumulative = 0
    for index, count in enumerate(counts):
        if count and cumulative + count >= rank:
            if index >= len(BOUNDS_MS):
                return float(BOUNDS_MS[-1])
            lower = 0.0 if index == 0 else float(BOUNDS_MS[index - 1])
            upper = float(BOUNDS_MS[index])
            return lower + (upper - lower) * max(rank - cumulative, 0) / count
        cumulative += count
    return float(BOUNDS_MS[-1])


@dataclass(frozen=True)
class Window:
    code: str  # "24h", "7d", "90d"
    hours: int


WINDOWS = (Window("24h", 24), Window("7d", 24 * 7), Window("90d", 24 * 90))
STRIP_DAYS = 90


def window_start(now: datetime, hours: int) -> datetime:
    """Windows are whole UTC hours ending with the current (partial) one: "24h" is the
    current hour and the 23 before it."""
    return hour_of(now) - timedelta(hours=hours - 1)


@dataclass
class HealthReport:
    """One set of endpoints: each window's health and a day-by-day strip (oldest first)."""

    windows: dict[str, Health]
    days: list[tuple[datetime, Health]]
    last_hour: Health


def _histogram_sums() -> dict[str, Sum]:
    """SUM of each histogram element, added up by the database.

    `histogram` is a JSON array: element i is read with the JSON operators both databases
    have (PostgreSQL `histogram ->> i`, SQLite `histogram ->> '$[i]'` / JSON_EXTRACT), cast
    to an integer; a short or missing array counts as zeros.
    """
    return {
        f"h{index}": Sum(Cast(KeyTextTransform(str(index), "histogram"), BigIntegerField()))
        for index in range(BUCKETS)
    }


def _utc_day():
    """The UTC day of a bucket's hour, made by the database.

    PostgreSQL: date_trunc in UTC. SQLite keeps aware datetimes as UTC text
    ("YYYY-MM-DD HH:MM:SS"), so the day is its first ten characters; Django's TruncDay there
    calls a Python function per row, which cost more than the rest of the query.
    """
    if connection.vendor == "sqlite":
        return Substr("hour", 1, 10, output_field=CharField())
    return TruncDay("hour", tzinfo=UTC)


def health_reports(
    *, groups: dict[str, list[str]], environment: str, now: datetime
) -> dict[str, HealthReport]:
    """Health of each named set of endpoints over every window, its 90-day strip and its
    last hour, in one environment.

    Two queries, whatever the number of hours stored, and the sums are made by the database:
    - per endpoint and *band* of hours (the last hour, the rest of 24h, of 7d, of 90d):
      calls, errors, latency and the histogram's elements; windows add up bands (24h is the
      first two, 7d three, 90d all four), so each bucket's JSON is read once;
    - per endpoint and UTC day: calls, errors and latency for the strip (its bars show no
      percentiles, so days carry no histogram: their p50/p95 are None).
    Python then only adds endpoints into their groups (a few rows per endpoint).
    """
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=STRIP_DAYS - 1)
    current = hour_of(now)
    last_hour_start = current - timedelta(hours=1)
    day_starts = [first_day + timedelta(days=offset) for offset in range(STRIP_DAYS)]
    # Bands, newest first; the windows are sorted shortest first and each is a run of bands.
    windows = sorted(WINDOWS, key=lambda window: window.hours)
    band_starts = [last_hour_start] + [window_start(now, window.hours) for window in windows]
    window_bands = {window.code: index + 2 for index, window in enumerate(windows)}

    reports = {
        name: HealthReport(
            windows={window.code: Health() for window in WINDOWS},
            days=[(day, Health()) for day in day_starts],
            last_hour=Health(),
        )
        for name in groups
    }
    members: dict[str, list[str]] = {}
    for name, endpoint_ids in groups.items():
        for endpoint_id in endpoint_ids:
            members.setdefault(str(endpoint_id), []).append(name)
    if not members:
        return reports
    buckets = HealthBucket.objects.filter(
        endpoint_id__in=list(members), environment=environment, hour__lte=current, calls__gt=0
    )
    totals = {"calls": Sum("calls"), "errors": Sum("errors"), "latency": Sum("latency_ms_total")}

    band = Case(
        *(When(hour__gte=start, then=Value(index)) for index, start in enumerate(band_starts)),
        default=Value(-1),
        output_field=IntegerField(),
    )
    by_band = (
        buckets.filter(hour__gte=band_starts[-1])
        .annotate(band=band)
        .values("endpoint_id", "band")
        .annotate(**totals, **_histogram_sums())
        .order_by()
    )
    for row in by_band:
        histogram = [int(row[f"h{index}"] or 0) for index in range(BUCKETS)]
        figures = (int(row["calls"] or 0), int(row["errors"] or 0), float(row["latency"] or 0))
        for name in members.get(str(row["endpoint_id"]), ()):
            report = reports[name]
            for code, bands in window_bands.items():
                if row["band"] < bands:
                    report.windows[code].add(*figures, histogram)
            if row["band"] == 0:
                report.last_hour.add(*figures, histogram)

    by_day = (
        buckets.filter(hour__gte=first_day)
        .annotate(day=_utc_day())
        .values("endpoint_id", "day")
        .annotate(**totals)
        .order_by()
    )
    for row in by_day:
        day = row["day"]
        if isinstance(day, str):  # SQLite: "YYYY-MM-DD"
            day = datetime.fromisoformat(day).replace(tzinfo=UTC)
        day_index = (day.astimezone(UTC) - first_day).days
        if not 0 <= day_index < STRIP_DAYS:
            continue
        figures = (int(row["calls"] or 0), int(row["errors"] or 0), float(row["latency"] or 0))
        for name in members.get(str(row["endpoint_id"]), ()):
            reports[name].days[day_index][1].add(*figures, None)
    return reports
