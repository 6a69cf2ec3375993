"""Fetching one row from an already org-scoped queryset, 404 for anything not in it."""

import uuid

from django.db.models import Model, QuerySet

from common.errors import NotFound


def get_or_not_found(queryset: QuerySet, pk, what: str) -> Model:
    """A malformed id, a missing row and another org's row all look the same: not found."""
    try:
        uuid.UUID(str(pk))
    except (ValueError, TypeError, AttributeError) as error:
        raise NotFound(f"No such {what}.") from error
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise NotFound(f"No such {what}.")
    return found
