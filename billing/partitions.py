"""Monthly partitions of the usage ledger on PostgreSQL (a no-op on other databases).

Partitions are created ahead of time by a daily task; a DEFAULT partition catches anything
outside them so an insert never fails for want of a partition.
"""

from datetime import UTC, date, datetime

from django.db import connection

LEDGER_TABLE = "billing_usageevent"


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{LEDGER_TABLE}_p{month:%Y_%m}"


def ensure_ledger_partitions(
    *, around: datetime | None = None, before: int = 2, after: int = 3, using=None
) -> list[str]:
    """Creates the monthly partitions from `before` months before to `after` months after."""
    conn = using or connection
    if conn.vendor != "postgresql":
        return []
    center = _month_start((around or datetime.now(UTC)).date())
    created = []
    with conn.cursor() as cursor:
        for offset in range(-before, after + 1):
            start = _add_months(center, offset)
            end = _add_months(start, 1)
            name = partition_name(start)
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is not None:
                continue
            cursor.execute(
                f'CREATE TABLE "{name}" PARTITION OF "{LEDGER_TABLE}" '
                f"FOR VALUES FROM ('{start.isoformat()} 00:00:00+00') "
                f"TO ('{end.isoformat()} 00:00:00+00')"
            )
            created.append(name)
    return created
