"""Marketplace background work (filled in by issue #9's revenue-share work)."""
