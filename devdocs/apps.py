import logging

from django.apps import AppConfig
from django.db import DatabaseError

logger = logging.getLogger(__name__)


def _record_onboarding_calls(sender, events, **kwargs) -> None:
    """A failure here must not fail the usage drain: the ledger rows are what counts."""
    from devdocs.onboarding import record_calls

    try:
        record_calls(events)
    except DatabaseError:
        logger.exception("could not record onboarding milestones")


class DevdocsConfig(AppConfig):
    """The developer docs portal: reference, guides, sandbox, collections, status, changelog."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "devdocs"
    verbose_name = "Developer docs"

    def ready(self) -> None:
        from keys.signals import gate_calls_ingested

        gate_calls_ingested.connect(_record_onboarding_calls, dispatch_uid="devdocs-onboarding")
