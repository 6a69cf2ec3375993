"""CSV cells: formulas are neutralised, numbers and data pass through."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from common.csv_export import csv_cell, stream_csv


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+1", "'+1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("-10", "-10"),
        ("-0.25", "-0.25"),
        ("plain text", "plain text"),
        (None, ""),
        (True, "true"),
        (7, 7),
        (Decimal("1.50"), Decimal("1.50")),
        ({"b": 1, "a": [2]}, '{"a": [2], "b": 1}'),
        (datetime(2026, 11, 25, 12, tzinfo=UTC), "2026-11-25T12:00:00+00:00"),
    ],
)
def test_cells_are_safe_for_spreadsheets(value, cell):
    assert csv_cell(value) == cell


def test_stream_writes_header_then_rows_lazily():
    rows = iter([["=1", 2], ["x", None]])
    lines = stream_csv(rows, ["a", "b"])
    assert next(lines) == "a,b\r\n"
    assert list(lines) == ["'=1,2\r\n", "x,\r\n"]
