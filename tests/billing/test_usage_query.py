"""Usage from rollups (plus exact edges) equals a direct computation over the ledger."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.ingest import usage_ingest
from billing.models import Meter, UsageEvent
from billing.selectors import UsageFilter, usage_aggregate
from billing.services import usage_correct
from portal.audit import Actor
from tests.factories import ApiKeyFactory, OrganizationFactory, ProjectFactory

BASE = (timezone.now() - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def brute_force(meter: Meter, rows: list[UsageEvent], start, end, reversed_ids) -> Decimal | None:
    """The definition of each aggregation, computed from ledger rows without rollups."""
    window = [row for row in rows if start <= row.occurred_at < end]
    effective = [row for row in window if row.reverses_id is None and row.id not in reversed_ids]
    if meter.aggregation in ("count", "sum"):
        return sum((row.quantity for row in window), Decimal(0))
    if meter.aggregation == "max":
        return max((row.quantity for row in effective), default=None)
    if meter.aggregation == "last":
        latest = max(effective, key=lambda row: (row.occurred_at, row.id), default=None)
        return latest.quantity if latest else None
    return Decimal(len({str(row.properties[meter.unique_property]) for row in effective}))


event_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6 * 60),  # minutes after BASE
        st.integers(min_value=0, max_value=50),  # quantity
        st.integers(min_value=0, max_value=4),  # unique value
        st.booleans(),  # corrected afterwards?
    ),
    min_size=1,
    max_size=25,
)
window_strategy = st.tuples(
    st.integers(min_value=-30, max_value=7 * 60), st.integers(min_value=1, max_value=8 * 60)
)


@pytest.mark.usefixtures("meters", "store_path")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(
        ["requests", "records_processed", "storage_gb", "active_users", "last_seen"]
    ),
    events=event_strategy,
    window=window_strategy,
)
def test_usage_equals_ledger_for_every_aggregation(code, events, window):
    # Each example in its own savepoint, rolled back, so examples never see each other's rows.
    with transaction.atomic():
        check_usage_equals_ledger(code, events, window)
        transaction.set_rollback(True)


def check_usage_equals_ledger(code, events, window):
    meter = (
        Meter.objects.get_or_create(
            code="last_seen", defaults={"name": "Last", "unit": "x", "aggregation": "last"}
        )[0]
        if code == "last_seen"
        else Meter.objects.get(code=code)
    )
    org = OrganizationFactory()
    batch = []
    for index, (minutes, quantity, user, _corrected) in enumerate(events):
        event = {
            "id": f"e{index}",
            "meter": meter.code,
            "customer": org.slug,
            "timestamp": (BASE + timedelta(minutes=minutes)).isoformat(),
            "properties": {"user_id": f"u{user}"},
        }
        if meter.aggregation != "count":
            event["quantity"] = str(quantity)
        batch.append(event)
    result = usage_ingest(events=batch)
    assert result.accepted == len(events) and not result.rejected
    for index, (*_rest, corrected) in enumerate(events):
        if corrected:
            usage_correct(
                actor=Actor.system("test"), organization=org, event_id=f"e{index}", reason="test"
            )

    start = BASE + timedelta(minutes=window[0])
    end = start + timedelta(minutes=window[1])
    rows = list(UsageEvent.objects.filter(organization=org))
    reversed_ids = {row.reverses_id for row in rows if row.reverses_id}
    expected = brute_force(meter, rows, start, end, reversed_ids)
    usage = UsageFilter(organization_id=org.id, meter=meter, start=start, end=end)
    [total] = usage_aggregate(usage)
    assert total["quantity"] == expected

    by_hour = usage_aggregate(
        UsageFilter(organization_id=org.id, meter=meter, start=start, end=end, group_by=("hour",))
    )
    for group in by_hour:
        hour_start = max(group["hour"], start)
        hour_end = min(group["hour"] + timedelta(hours=1), end)
        assert group["quantity"] == brute_force(meter, rows, hour_start, hour_end, reversed_ids)


def test_group_by_project_key_endpoint_and_day(db, meters):
    org = OrganizationFactory()
    first, second = ProjectFactory(organization=org), ProjectFactory(organization=org)
    key = ApiKeyFactory(project=first, environment="live")
    moment = BASE + timedelta(minutes=5)
    usage_ingest(
        events=[
            {
                "id": "a",
                "meter": "requests",
                "api_key": key.raw_key,
                "endpoint": "GET /docs",
                "timestamp": moment.isoformat(),
            },
            {
                "id": "b",
                "meter": "requests",
                "api_key": key.raw_key,
                "endpoint": "POST /docs",
                "timestamp": moment.isoformat(),
            },
            {
                "id": "c",
                "meter": "requests",
                "customer": org.slug,
                "project": str(second.id),
                "timestamp": (moment + timedelta(days=1)).isoformat(),
            },
        ]
    )
    usage = UsageFilter(
        organization_id=org.id,
        meter=meters["requests"],
        start=BASE,
        end=BASE + timedelta(days=2),
        group_by=("project", "key", "endpoint"),
    )
    results = {
        (r["project"], r["key"], r["endpoint"]): r["quantity"] for r in usage_aggregate(usage)
    }
    assert results == {
        (first.id, key.id, "GET /docs"): 1,
        (first.id, key.id, "POST /docs"): 1,
        (second.id, None, ""): 1,
    }
    by_day = usage_aggregate(
        UsageFilter(
            organization_id=org.id,
            meter=meters["requests"],
            start=BASE,
            end=BASE + timedelta(days=2),
            group_by=("day",),
        )
    )
    assert [(r["day"], r["quantity"]) for r in by_day] == [
        (moment.date(), 2),
        ((moment + timedelta(days=1)).date(), 1),
    ]


def test_test_usage_is_kept_apart_from_live(db, meters):
    org = OrganizationFactory()
    usage_ingest(
        events=[
            {"id": "live", "meter": "requests", "customer": org.slug},
            {"id": "test", "meter": "requests", "customer": org.slug, "environment": "test"},
            {"id": "test2", "meter": "requests", "customer": org.slug, "environment": "test"},
        ]
    )
    now = timezone.now()
    window = {
        "organization_id": org.id,
        "meter": meters["requests"],
        "start": now - timedelta(hours=1),
        "end": now + timedelta(minutes=1),
    }
    assert usage_aggregate(UsageFilter(**window))[0]["quantity"] == 1
    assert usage_aggregate(UsageFilter(**window, environment="test"))[0]["quantity"] == 2


def test_empty_window_reads_zero_for_count_and_none_for_max(db, meters):
    org = OrganizationFactory()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = {"organization_id": org.id, "start": start, "end": start + timedelta(days=1)}
    assert usage_aggregate(UsageFilter(meter=meters["requests"], **window)) == [
        {"quantity": Decimal(0)}
    ]
    assert usage_aggregate(UsageFilter(meter=meters["storage_gb"], **window)) == [
        {"quantity": None}
    ]
