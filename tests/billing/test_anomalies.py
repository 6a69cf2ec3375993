"""Anomaly detection: the robust z-score and its fallbacks, the daily job (idempotent per
day, live usage only, e-mailed), and what invoices read back for a period."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing.anomalies import (
    MIN_DAILY_VOLUME,
    anomalies_detect,
    anomalies_for_period,
    anomaly_explanation,
    assess,
)
from billing.ingest import usage_ingest
from billing.models import UsageAnomaly
from billing.tasks import detect_anomalies
from tests.factories import MembershipFactory

D = Decimal
DAY = date(2026, 11, 3)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def old_usage_allowed(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650


def record_days(org, quantities: list, *, last_day=DAY, meter="requests", environment="live"):
    """One event per day, ending on `last_day`, at noon UTC."""
    first = last_day - timedelta(days=len(quantities) - 1)
    events = []
    for offset, quantity in enumerate(quantities):
        if quantity is None:
            continue
        day = first + timedelta(days=offset)
        events.append(
            {
                "id": f"{meter}-{environment}-{day.isoformat()}",
                "meter": meter,
                "customer": org.slug,
                "quantity": quantity,
                "timestamp": datetime(day.year, day.month, day.day, 12, tzinfo=UTC).isoformat(),
                "environment": environment,
            }
        )
    result = usage_ingest(events=events)
    assert result.accepted == len(events), result.rejected


STEADY = [950, 1000, 1050] * 9 + [1000]  # 28 days: median 1,000, MAD 50


# --- The method ----------------------------------------------------------------------------
def test_a_spike_far_outside_the_pattern_is_anomalous():
    history = [D(value) for value in STEADY]
    result = assess(D(12_400), history, MIN_DAILY_VOLUME)
    assert (result.median, result.mad) == (D(1000), D(50))
    assert result.score == D("153.7860")  # 0.6745 * 11,400 / 50
    assert result.anomalous


def test_ordinary_variation_is_not_anomalous():
    history = [D(value) for value in STEADY]
    assert not assess(D(1100), history, MIN_DAILY_VOLUME).anomalous  # z = 1.349
    assert not assess(D(1259), history, MIN_DAILY_VOLUME).anomalous  # z = 3.494
    assert assess(D(1260), history, MIN_DAILY_VOLUME).anomalous  # z = 3.507


def test_a_drop_is_not_flagged():
    """Drops lower the bill; flagging them would flag every quiet weekend."""
    history = [D(value) for value in STEADY]
    result = assess(D(0), history, MIN_DAILY_VOLUME)
    assert result.score == D("-13.4900")
    assert not result.anomalous


def test_with_a_zero_mad_the_mean_absolute_deviation_stands_in():
    history = [D(1000)] * 20 + [D(1100)] * 8  # MAD 0; MeanAD 800 / 28
    result = assess(D(1200), history, MIN_DAILY_VOLUME)
    assert result.mad == 0
    assert result.score == D("5.5853")  # 200 / (1.2533 * 28.571...)
    assert result.anomalous
    assert not assess(D(1050), history, MIN_DAILY_VOLUME).anomalous


def test_with_an_unchanging_history_only_a_tenfold_change_counts():
    history = [D(1000)] * 10
    assert not assess(D(9_999), history, MIN_DAILY_VOLUME).anomalous
    spike = assess(D(10_001), history, MIN_DAILY_VOLUME)
    assert spike.anomalous and spike.score == 0
    assert not assess(D(99), history, MIN_DAILY_VOLUME).anomalous


def test_seven_days_of_history_are_needed():
    assert assess(D(50_000), [D(10), D(11), D(12), D(10), D(11), D(12)], D(1)) is None
    assert assess(D(50_000), [D(10), D(11), D(12), D(10), D(11), D(12), D(10)], D(1)).anomalous


def test_small_volumes_are_not_anomalies():
    history = [D(value) for value in [9, 10, 11] * 5]
    assert not assess(D(99), history, MIN_DAILY_VOLUME).anomalous  # z 59, but only 99 calls
    assert assess(D(100), history, MIN_DAILY_VOLUME).anomalous


# --- The daily job -------------------------------------------------------------------------
def test_the_daily_job_flags_explains_and_emails_once(
    org, meters, mailoutbox, django_capture_on_commit_callbacks
):
    owner = MembershipFactory(organization=org).user
    record_days(org, [*STEADY, 12_400])
    with django_capture_on_commit_callbacks(execute=True):
        [anomaly] = anomalies_detect(day=DAY)
    assert (anomaly.organization, anomaly.meter.code, anomaly.day) == (org, "requests", DAY)
    assert (anomaly.observed, anomaly.median, anomaly.mad) == (D(12_400), D(1000), D(50))
    assert anomaly.score == D("153.7860")
    assert anomaly.explanation == (
        "Usage on 2026-11-03 was 12,400 requests, 12.4x the median of the previous 28 days "
        "(robust z-score 153.8)."
    )
    [message] = mailoutbox
    assert message.to == [owner.email]
    assert "2026-11-03" in message.subject
    assert anomaly.explanation in message.body
    assert f"/o/{org.slug}/billing/alerts" in message.body
    # Again for the same day: nothing new is recorded or sent.
    with django_capture_on_commit_callbacks(execute=True):
        assert anomalies_detect(day=DAY) == []
    assert UsageAnomaly.objects.count() == 1
    assert len(mailoutbox) == 1


def test_steady_usage_and_test_usage_are_not_flagged(org, other_org, meters):
    record_days(org, [*STEADY, 1010])
    record_days(other_org, [*STEADY, None], environment="live")
    record_days(other_org, [None] * 28 + [50_000], environment="test")
    assert anomalies_detect(day=DAY) == []


def test_history_counts_from_the_first_day_of_usage(org, other_org, meters):
    # Five days of history only: too little to judge.
    record_days(org, [1000, 1000, 1000, 1000, 1000, 90_000])
    # Ten days, three of them without usage (counted as zero days after the first use).
    record_days(other_org, [1000, None, 1000, None, 1000, None, 1000, 1000, 1000, 1000, 90_000])
    [anomaly] = anomalies_detect(day=DAY)
    assert anomaly.organization == other_org
    assert "the previous 10 days" in anomaly.explanation


def test_usage_after_a_silent_history_is_explained_without_a_ratio(org, meters):
    record_days(org, [500, *([None] * 27), 5000])  # 28 days: one with usage, 27 zero
    [anomaly] = anomalies_detect(day=DAY)
    assert anomaly.median == 0
    assert anomaly.explanation.startswith(
        "Usage on 2026-11-03 was 5,000 requests, while the median of the previous 28 days was 0"
    )


def test_the_task_assesses_the_day_it_is_given(org, meters):
    record_days(org, [*STEADY, 12_400])
    assert detect_anomalies.delay(day=DAY.isoformat()).get() == 1
    assert detect_anomalies.delay(day=DAY.isoformat()).get() == 0


# --- What invoices read ----------------------------------------------------------------------
def test_invoices_get_the_anomalies_of_their_period(org, other_org, meters):
    record_days(org, [*STEADY, 12_400])
    [anomaly] = anomalies_detect(day=DAY)
    november = (at(2026, 11, 1), at(2026, 12, 1))
    assert anomalies_for_period(org.id, "requests", *november) == [anomaly]
    assert anomaly_explanation(org.id, "requests", *november) == anomaly.explanation
    # A period that ends at midnight before the day, or starts after it, does not.
    assert anomalies_for_period(org.id, "requests", at(2026, 10, 3), at(2026, 11, 3)) == []
    assert anomalies_for_period(org.id, "requests", at(2026, 11, 4), at(2026, 12, 4)) == []
    # An anniversary period that covers part of the day does.
    assert anomalies_for_period(org.id, "requests", at(2026, 11, 3, 14), at(2026, 12, 3, 14))
    assert anomalies_for_period(org.id, "records_processed", *november) == []
    assert anomalies_for_period(other_org.id, "requests", *november) == []
    assert anomaly_explanation(other_org.id, "requests", *november) == ""
