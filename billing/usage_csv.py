"""Ledger rows as CSV: the evidence behind a usage figure, for the API and the portal."""

from collections.abc import Iterable, Iterator

from billing.selectors import format_decimal
from common.csv_export import stream_csv

EXPORT_COLUMNS = [
    "ledger_id",
    "event_id",
    "timestamp",
    "received_at",
    "meter",
    "quantity",
    "environment",
    "project",
    "api_key",
    "endpoint",
    "request_id",
    "source",
    "reverses",
    "reason",
    "properties",
]
QUANTITY_COLUMN = EXPORT_COLUMNS.index("quantity")


def export_lines(rows: Iterable[tuple]) -> Iterator[str]:
    """Rows from selectors.usage_export_rows, in EXPORT_COLUMNS order, as CSV lines."""

    def cells(row: tuple) -> list:
        values = list(row)
        # A plain decimal string ("-10", "0.5"), not Decimal's exponent form.
        values[QUANTITY_COLUMN] = format_decimal(values[QUANTITY_COLUMN])
        return values

    return stream_csv((cells(row) for row in rows), EXPORT_COLUMNS)
