"""Signals keys sends for the layers above it (which keys must not import)."""

from django.dispatch import Signal

# Sent after the gate's allowed calls reached the usage ledger, with `events`: the usage
# events written (each with key_id, environment, timestamp, endpoint, request_id).
gate_calls_ingested = Signal()
