"""Usage anomalies (BILL-6): a day on which an organization used a meter far outside its own
recent pattern, found by a daily job, e-mailed, and explained on the invoice line.

Method (docs/billing.md): the day's live usage of a meter is compared with the org's daily
usage of that meter on the 28 days before it, by the modified z-score of Iglewicz and
Hoaglin, which uses the median and the median absolute deviation (MAD) so that one earlier
spike does not hide the next:

    z = 0.6745 * (x - median) / MAD

A day is flagged when z > 3.5, the day's usage reaches MIN_DAILY_VOLUME (small numbers
swing wildly without meaning anything), and the org has at least MIN_HISTORY_DAYS days of
history (days since its first usage in the window). Only increases are flagged: they are
what makes a bill surprising, and flagging drops would flag every quiet weekend of an API
used on weekdays. When the MAD is 0 (more than half of the days alike) the mean absolute
deviation stands in: z = (x - median) / (1.2533 * MeanAD); when that is 0 too (every day the
same), the day is flagged when it is more than FALLBACK_FACTOR times the median, and the
score is 0. Everything is Decimal.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import webhook_events
from billing.alerts import alerts_url
from billing.models import Meter, UsageAnomaly, UsageRollup
from billing.notifications import notify_billing_contacts
from billing.selectors import UsageFilter, usage_aggregate
from billing.templatetags.billing_tags import format_quantity
from portal.models import Organization
from webhooks.services import emit

WINDOW_DAYS = 28
MIN_HISTORY_DAYS = 7
Z_THRESHOLD = Decimal("3.5")
MAD_SCALE = Decimal("0.6745")  # the 0.75 quantile of the standard normal distribution
MEAN_AD_SCALE = Decimal("1.2533")  # sqrt(pi / 2): MeanAD of a normal distribution is 0.7979 sd
FALLBACK_FACTOR = Decimal(10)
MIN_DAILY_VOLUME = Decimal(100)
SCORE_LIMIT = Decimal("1e15")  # the score column holds 16 digits before the point
SCORE_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)


def _min_volume() -> Decimal:
    return Decimal(str(getattr(settings, "ANOMALY_MIN_DAILY_VOLUME", MIN_DAILY_VOLUME)))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Assessment:
    observed: Decimal
    median: Decimal
    mad: Decimal
    score: Decimal
    anomalous: bool
    history_days: int


def assess(observed: Decimal, history: list[Decimal], min_volume: Decimal) -> Assessment | None:
    """The robust z-score of `observed` against `history` (daily values, oldest first,
    starting at the first day with usage). None without enough history."""
    if len(history) < MIN_HISTORY_DAYS:
        return None
    middle = median(history)
    deviations = [abs(value - middle) for value in history]
    mad = median(deviations)
    difference = observed - middle
    if mad:
        score = MAD_SCALE * difference / mad
        anomalous = score > Z_THRESHOLD
    else:
        mean_ad = sum(deviations, ZERO) / len(deviations)
        if mean_ad:
            score = difference / (MEAN_AD_SCALE * mean_ad)
            anomalous = score > Z_THRESHOLD
        else:
            score = ZERO
            # History starts at a day with usage, so an unchanging history is not zero.
            anomalous = observed > middle * FALLBACK_FACTOR
    anomalous = anomalous and observed >= min_volume
    score = max(min(score, SCORE_LIMIT), -SCORE_LIMIT).quantize(SCORE_QUANTUM, ROUND_HALF_UP)
    return Assessment(
        observed=observed,
        median=middle,
        mad=mad,
        score=score,
        anomalous=anomalous,
        history_days=len(history),
    )


def _ratio_text(observed: Decimal, middle: Decimal) -> str:
    ratio = observed / middle
    step = Decimal("0.1") if ratio >= 1 else Decimal("0.01")
    return f"{format_quantity(ratio.quantize(step, ROUND_HALF_UP))}x"


def explanation(meter: Meter, day: date, assessment: Assessment) -> str:
    """ "Usage on 2026-11-03 was 12,400 requests, 8.1x the median of the previous 28 days
    (robust z-score 41.2)." """
    unit = meter.unit if meter.unit.endswith("s") else f"{meter.unit}s"
    days = f"the previous {assessment.history_days} days"
    observed = f"{format_quantity(assessment.observed)} {unit}"
    if assessment.median:
        comparison = f"{_ratio_text(assessment.observed, assessment.median)} the median of {days}"
    else:
        comparison = f"while the median of {days} was 0"
    if assessment.score:
        score = f"robust z-score {format_quantity(assessment.score.quantize(Decimal('0.1')))}"
    else:
        score = f"every earlier day was {format_quantity(assessment.median)}"
    return f"Usage on {day.isoformat()} was {observed}, {comparison} ({score})."


def _daily_values(organization_id, meter: Meter, day: date) -> tuple[Decimal, list[Decimal]] | None:
    """(the day's usage, daily usage from the first day with usage in the window to the day
    before), or None when the window holds no usage at all."""
    first = day - timedelta(days=WINDOW_DAYS)
    rows = usage_aggregate(
        UsageFilter(
            organization_id=organization_id,
            meter=meter,
            start=_day_start(first),
            end=_day_start(day + timedelta(days=1)),
            group_by=("day",),
        )
    )
    by_day = {row["day"]: row["quantity"] or ZERO for row in rows if row["quantity"]}
    used = sorted(d for d in by_day if d < day)
    if not used:
        return None
    history = [
        by_day.get(used[0] + timedelta(days=offset), ZERO) for offset in range((day - used[0]).days)
    ]
    return by_day.get(day, ZERO), history


def _candidates(day: date) -> list[tuple]:
    """(organization id, meter id) of every live series with usage in the window."""
    return list(
        UsageRollup.objects.filter(
            environment="live",
            hour__gte=_day_start(day - timedelta(days=WINDOW_DAYS)),
            hour__lt=_day_start(day + timedelta(days=1)),
        )
        .values_list("organization_id", "meter_id")
        .distinct()
        .order_by("organization_id", "meter_id")
    )


def anomalies_detect(*, day: date, now: datetime | None = None) -> list[UsageAnomaly]:
    """Assesses `day` (a whole UTC day, normally yesterday) for every org and meter with live
    usage; records and e-mails new anomalies. Running it again for the same day records and
    sends nothing new."""
    now = now or timezone.now()
    min_volume = _min_volume()
    meters = {meter.id: meter for meter in Meter.objects.all()}
    found: dict = {}
    for organization_id, meter_id in _candidates(day):
        meter = meters.get(meter_id)
        if meter is None:
            continue
        values = _daily_values(organization_id, meter, day)
        if values is None:
            continue
        observed, history = values
        assessment = assess(observed, history, min_volume)
        if assessment is None or not assessment.anomalous:
            continue
        if UsageAnomaly.objects.filter(
            organization_id=organization_id, meter=meter, day=day
        ).exists():
            continue
        try:
            with transaction.atomic():
                anomaly = UsageAnomaly.objects.create(
                    organization_id=organization_id,
                    meter=meter,
                    day=day,
                    observed=assessment.observed,
                    median=assessment.median,
                    mad=assessment.mad,
                    score=assessment.score,
                    explanation=explanation(meter, day, assessment),
                    detected_at=now,
                )
                emit(
                    organization=organization_id,
                    type="usage.anomaly_detected",
                    data=webhook_events.anomaly_data(anomaly),
                )
        except IntegrityError:
            continue  # another run recorded it a moment ago
        found.setdefault(organization_id, []).append(anomaly)
    for organization in Organization.objects.filter(pk__in=found):
        anomalies = found[organization.pk]
        with transaction.atomic():
            notify_billing_contacts(
                organization,
                subject=f"Unusual usage on {day.isoformat()}",
                template="billing/email/anomaly.txt",
                context={
                    "anomalies": anomalies,
                    "day": day,
                    "alerts_url": alerts_url(organization),
                },
            )
    return [anomaly for anomalies in found.values() for anomaly in anomalies]


def period_days(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last UTC days that overlap [start, end)."""
    return start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()


def anomalies_for_period(
    organization_id, meter_code: str, start: datetime, end: datetime
) -> list[UsageAnomaly]:
    """The anomalies of a meter on days that overlap [start, end), oldest first: what an
    invoice's usage line for that period explains (see `anomaly_explanation`)."""
    first_day, last_day = period_days(start, end)
    return list(
        UsageAnomaly.objects.filter(
            organization_id=organization_id,
            meter__code=meter_code,
            day__gte=first_day,
            day__lte=last_day,
        )
        .select_related("meter")
        .order_by("day")
    )


def anomaly_explanation(organization_id, meter_code: str, start: datetime, end: datetime) -> str:
    """The text for an invoice line's `explanation`: each anomaly's sentence, or ""."""
    return " ".join(
        anomaly.explanation
        for anomaly in anomalies_for_period(organization_id, meter_code, start, end)
    )


def anomaly_list(*, organization: Organization, limit: int = 50) -> list[UsageAnomaly]:
    return list(
        UsageAnomaly.objects.filter(organization=organization)
        .select_related("meter")
        .order_by("-day", "meter__code")[:limit]
    )
