"""The gate's measurements: hourly buckets, histogram percentiles, windows, concurrency."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from devdocs.health import (
    BOUNDS_MS,
    BUCKETS,
    Health,
    Outcome,
    bucket_index,
    health_reports,
    histogram_percentile,
    hour_of,
    record_outcomes,
)
from devdocs.models import HealthBucket
from keys.services import api_version_create
from portal.audit import Actor
from tests.keys.test_products import DOCUMENT

SYSTEM = Actor.system("test")
NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


@pytest.fixture
def endpoints(db):
    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    return {f"{e.method} {e.path_template}": str(e.id) for e in version.endpoints.all()}


def outcome(endpoint_id, *, status=200, ms=12.0, at=NOW, environment="live"):
    return Outcome(
        endpoint_id=endpoint_id, environment=environment, status=status, duration_ms=ms, at=at
    )


def histogram_with(**counts: int) -> list[int]:
    """histogram_with(b2=3): three calls in bucket 2 (10 < ms <= 25)."""
    histogram = [0] * BUCKETS
    for name, count in counts.items():
        histogram[int(name[1:])] = count
    return histogram


def test_outcomes_are_added_up_per_endpoint_environment_and_hour(endpoints):
    get, post = endpoints["GET /documents/{id}"], endpoints["POST /documents"]
    recorded = record_outcomes(
        [
            outcome(get, status=200, ms=3),
            outcome(get, status=404, ms=20),  # the client's mistake: served, not an error
            outcome(get, status=503, ms=700),
            outcome(get, status=0, ms=30000),  # no answer at all
            outcome(get, at=NOW + timedelta(hours=1)),
            outcome(get, environment="test"),
            outcome(post, status=201, ms=60),
        ]
    )
    assert recorded == 7
    bucket = HealthBucket.objects.get(endpoint_id=get, environment="live", hour=hour_of(NOW))
    assert (bucket.calls, bucket.errors) == (4, 2)
    assert bucket.latency_ms_total == pytest.approx(30723)
    assert bucket.histogram == histogram_with(b0=1, b2=1, b7=1, b11=1)
    assert HealthBucket.objects.get(endpoint_id=get, hour=hour_of(NOW) + timedelta(hours=1)).calls
    assert HealthBucket.objects.get(endpoint_id=get, environment="test").calls == 1
    assert HealthBucket.objects.get(endpoint_id=post).histogram == histogram_with(b4=1)
    assert HealthBucket.objects.count() == 4


def test_recording_again_adds_to_the_same_bucket(endpoints):
    get = endpoints["GET /documents/{id}"]
    record_outcomes([outcome(get, ms=1), outcome(get, status=500, ms=7)])
    record_outcomes([outcome(get, ms=7), outcome(get, ms=99999)])
    bucket = HealthBucket.objects.get()
    assert (bucket.calls, bucket.errors) == (4, 1)
    assert bucket.histogram == histogram_with(b0=1, b1=2, b11=1)


def test_nothing_to_record_writes_nothing(endpoints):
    assert record_outcomes([]) == 0
    assert not HealthBucket.objects.exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"at": datetime(2026, 11, 25, 10, 0)},  # naive
        {"environment": "prod"},
        {"duration_ms": -1},
        {"duration_ms": float("nan")},
        {"duration_ms": float("inf")},
        {"duration_ms": 10**400},  # float() would raise OverflowError, not ValueError
    ],
)
def test_a_bad_outcome_is_refused_and_nothing_of_its_batch_is_stored(endpoints, bad):
    get = endpoints["GET /documents/{id}"]
    values = {"endpoint_id": get, "environment": "live", "status": 200, "duration_ms": 1, "at": NOW}
    with pytest.raises(ValueError):
        record_outcomes([outcome(get), Outcome(**{**values, **bad})])
    assert not HealthBucket.objects.exists()


@pytest.mark.parametrize(
    ("ms", "index"),
    [(0, 0), (5, 0), (5.001, 1), (10, 1), (999.9, 7), (1000, 7), (10000, 10), (10000.1, 11)],
)
def test_bucket_bounds_are_inclusive_upper_bounds(ms, index):
    assert bucket_index(ms) == index


def test_percentiles_interpolate_inside_the_bucket_holding_the_rank():
    # 100 calls in (10, 25]: the median is half-way through that bucket.
    assert histogram_percentile(histogram_with(b2=100), 0.5) == pytest.approx(17.5)
    # 90 fast (<= 5 ms), 10 slow in (500, 1000]: p50 is fast, p95 is half-way in the slow one.
    histogram = histogram_with(b0=90, b7=10)
    assert histogram_percentile(histogram, 0.5) == pytest.approx(5 * 50 / 90)
    assert histogram_percentile(histogram, 0.95) == pytest.approx(750)
    assert histogram_percentile(histogram, 1.0) == pytest.approx(1000)


def test_percentiles_of_nothing_are_none_and_of_the_open_bucket_its_lower_bound():
    assert histogram_percentile([0] * BUCKETS, 0.5) is None
    assert histogram_percentile([], 0.5) is None
    assert histogram_percentile(histogram_with(b11=3), 0.5) == BOUNDS_MS[-1]
    with pytest.raises(ValueError):
        histogram_percentile(histogram_with(b1=1), 1.5)


def test_percentiles_over_a_span_come_from_the_summed_buckets(endpoints):
    get = endpoints["GET /documents/{id}"]
    # Hour 1: 50 fast calls; hour 2: 50 slow ones. Neither hour alone has this median.
    record_outcomes([outcome(get, ms=4, at=NOW - timedelta(hours=1))] * 50)
    record_outcomes([outcome(get, ms=400, at=NOW)] * 50)
    report = health_reports(groups={"all": [get]}, environment="live", now=NOW)["all"]
    day = report.windows["24h"]
    assert day.calls == 100
    assert day.p50 == pytest.approx(5.0)  # the 50th call is the slowest of the fast bucket
    assert day.p95 == pytest.approx(250 + 250 * 45 / 50)


def test_uptime_is_the_share_of_calls_not_errors_and_none_without_calls():
    assert Health().uptime is None
    assert Health().p50 is None
    health = Health()
    health.add(200, 3, 0.0, histogram_with(b0=200))
    assert health.uptime == pytest.approx(197 / 200)
    assert health.error_rate == pytest.approx(3 / 200)


def test_windows_are_whole_utc_hours_ending_with_the_current_one(endpoints):
    get = endpoints["GET /documents/{id}"]
    current = hour_of(NOW)
    placed = {
        "current hour": current,
        "23 h before": current - timedelta(hours=23),  # last hour inside 24h
        "24 h before": current - timedelta(hours=24),  # first hour outside 24h
        "last of 7d": current - timedelta(hours=7 * 24 - 1),
        "first outside 7d": current - timedelta(hours=7 * 24),
        "last of 90d": current - timedelta(hours=90 * 24 - 1),
        "first outside 90d": current - timedelta(hours=90 * 24),
    }
    for at in placed.values():
        # Each hour gets one error and one success, at the hour's very start.
        record_outcomes([outcome(get, status=500, at=at), outcome(get, at=at)])
    report = health_reports(groups={"all": [get]}, environment="live", now=NOW)["all"]
    assert report.windows["24h"].calls == 2 * 2
    assert report.windows["7d"].calls == 2 * 4
    assert report.windows["90d"].calls == 2 * 6
    assert report.windows["90d"].uptime == pytest.approx(0.5)
    assert report.last_hour.calls == 2  # the current hour (and the previous, empty one)


def test_the_daily_strip_has_ninety_utc_days_and_no_data_on_quiet_days(endpoints):
    get = endpoints["GET /documents/{id}"]
    record_outcomes([outcome(get, at=NOW), outcome(get, status=502, at=NOW)])
    record_outcomes([outcome(get, at=NOW - timedelta(days=89))])
    report = health_reports(groups={"all": [get]}, environment="live", now=NOW)["all"]
    assert len(report.days) == 90
    assert report.days[-1][0] == datetime(2026, 11, 25, tzinfo=UTC)
    assert report.days[-1][1].uptime == pytest.approx(0.5)
    assert report.days[0][1].uptime == 1.0
    assert report.days[1][1].uptime is None  # nothing happened: no data, not 100%


def test_measurements_of_other_environments_and_endpoints_stay_apart(endpoints):
    get, post = endpoints["GET /documents/{id}"], endpoints["POST /documents"]
    record_outcomes([outcome(get, environment="test", status=500), outcome(post)])
    reports = health_reports(groups={"get": [get], "post": [post]}, environment="live", now=NOW)
    assert reports["get"].windows["90d"].calls == 0
    assert reports["post"].windows["90d"].calls == 1


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_concurrent_recording_loses_no_counts(transactional_db):
    version = api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    get, post = [str(e.id) for e in version.endpoints.order_by("path_template", "method")][:2]
    threads_count, batches, per_batch = 4, 15, 20
    barrier = threading.Barrier(threads_count)
    failures = []

    def work(index):
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            for batch in range(batches):
                # Two endpoints, in an order that differs per thread: no deadlock either.
                first, second = (get, post) if (index + batch) % 2 else (post, get)
                record_outcomes(
                    [outcome(first, status=500 if n == 0 else 200) for n in range(per_batch // 2)]
                    + [outcome(second, ms=300) for _ in range(per_batch // 2)]
                )
        except Exception as error:
            failures.append(error)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    buckets = HealthBucket.objects.all()
    assert len(buckets) == 2
    total = sum(bucket.calls for bucket in buckets)
    assert total == threads_count * batches * per_batch
    assert sum(sum(bucket.histogram) for bucket in buckets) == total
    assert sum(bucket.errors for bucket in buckets) == threads_count * batches
    assert connection.vendor == "postgresql"
