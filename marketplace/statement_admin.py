"""Operator admin for the marketplace's revenue share (filled in by issue #9's work)."""
