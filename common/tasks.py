"""Housekeeping tasks for the API plumbing."""

from celery import shared_task

from common.idempotency import purge_expired_records


@shared_task(queue="default")
def purge_idempotency_records() -> int:
    return purge_expired_records()
