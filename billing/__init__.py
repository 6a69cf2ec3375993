"""Meters, the usage ledger and rollups (and, later, pricing, subscriptions and invoices)."""
