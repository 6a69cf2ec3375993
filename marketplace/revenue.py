"""Revenue share (MKT-4): agreements, and partners' shares of paid invoices."""

from datetime import datetime


def revenue_accrue(*, until: datetime | None = None) -> int:
    """STUB (helper fills in): entries for paid invoice lines and credit notes; count made."""
    return 0
