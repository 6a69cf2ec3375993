"""Celery tasks of the developer docs portal. Thin: devdocs services do the work."""

from celery import shared_task

from devdocs.changelog import deprecation_notices_send


@shared_task(queue="default", acks_late=True, ignore_result=True)
def send_deprecation_notices(deprecation_id: str | None = None) -> int:
    """E-mails organizations that called a deprecated endpoint in the last 30 days (beat,
    daily; and right after a deprecation is saved, for that one). Idempotent: each
    organization hears of each deprecation once, however often this runs (a sunset moved
    earlier is announced again by the change itself, devdocs.changelog.deprecation_update).
    Without beat (the embedded mode) only the runs queued by saves and the admin action
    happen: see docs/changelog.md."""
    return deprecation_notices_send(deprecation_id=deprecation_id).sent
