"""Streaming CSV for exports: constant memory, and cells that spreadsheets will not execute."""

import csv
import json
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# ...but a plain number such as "-10.5" is data, not a formula.
_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_cell(value) -> str | int | Decimal:
    """One value as a CSV cell; text that would start a formula is quoted with a leading '."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return value  # Decimal: callers format it (money keeps its minor-unit digits)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value)
    if text.startswith(_FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def stream_csv(rows: Iterable[Iterable], header: list[str]) -> Iterator[str]:
    """Yields CSV lines, header first; pass a lazy iterator of rows to stream."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])
