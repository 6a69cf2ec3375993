"""Celery tasks of the delivery engine: `deliver_batch` / `deliver` (attempts, on the
`webhooks` queue) and `sweep_deliveries` (beat, every 5 s, on `default`: queues due retries,
lost messages and deliveries whose worker died). Thin: webhooks.delivery does the work.

A message carries up to BATCH_SIZE delivery ids (an event's deliveries, or a slice of a
sweep), so the broker and the claim cost once per batch, not once per delivery; the batch's
HTTP requests go out concurrently, each to its own endpoint."""

import logging

from celery import shared_task

from webhooks.delivery import attempt, attempt_many, deliveries_lease_for_queue, deliveries_sweep

logger = logging.getLogger(__name__)
BATCH_SIZE = 25


@shared_task(queue="webhooks", acks_late=True, ignore_result=True)
def deliver_batch(delivery_ids: list[str], lease_token: str | None = None) -> dict:
    """Attempts the deliveries. Safe to run twice or late: the claim in PostgreSQL decides
    which may run at all."""
    return attempt_many(delivery_ids, lease_token=lease_token, straggler_seconds=1.0)


@shared_task(queue="webhooks", acks_late=True, ignore_result=True)
def deliver(delivery_id: str, lease_token: str | None = None) -> str:
    """One delivery (kept for callers that queue a single one)."""
    return attempt(delivery_id, lease_token=lease_token)


def publish(items: list[tuple[str, str]]) -> None:
    """Publishes (id, token) pairs, one message per batch of ids that share a token."""
    by_token: dict[str, list[str]] = {}
    for delivery_id, token in items:
        by_token.setdefault(token, []).append(delivery_id)
    for token, ids in by_token.items():
        for start in range(0, len(ids), BATCH_SIZE):
            deliver_batch.apply_async((ids[start : start + BATCH_SIZE], token))


def deliveries_enqueue(delivery_ids: list[str]) -> int:
    """Leases fresh deliveries for the queue and publishes them (the nudge after commit)."""
    items = deliveries_lease_for_queue(delivery_ids=delivery_ids)
    publish(items)
    return len(items)


# Expires: a sweep that waited in the queue past the next one is pointless.
@shared_task(queue="default", ignore_result=True, expires=10)
def sweep_deliveries() -> int:
    queued = deliveries_sweep(enqueue=publish)
    if queued:
        logger.info("webhook sweep queued %d deliveries", queued)
    return queued
