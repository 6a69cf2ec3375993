"""Reads for webhook endpoints, events and the delivery log, always scoped to one organization."""

import re
from datetime import datetime

from django.db.models import Q, QuerySet

from common.errors import InvalidInput, NotFound
from common.lookups import get_or_not_found
from portal.models import Organization
from webhooks.models import DeliveryAttempt, Event, WebhookEndpoint

# `?status=` of the delivery log: an outcome, or a class of HTTP status codes.
ATTEMPT_STATUS_FILTERS = ("succeeded", "failed", "2xx", "3xx", "4xx", "5xx", "no_response")
# Event ids are `msg_` + 32 hex digits (webhooks.models.new_event_id); anything else that fits
# the column is looked up too, so an id only ever fails by not being found.
EVENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def _succeeded_q() -> Q:
    return Q(status_code__gte=200, status_code__lt=300)


def endpoint_list(
    *,
    organization: Organization,
    environment: str | None = None,
    status: str | None = None,
) -> QuerySet[WebhookEndpoint]:
    endpoints = WebhookEndpoint.objects.filter(organization=organization)
    if environment:
        endpoints = endpoints.filter(environment=environment)
    if status:
        endpoints = endpoints.filter(status=status)
    return endpoints.order_by("-created_at", "-id")


def endpoint_get(*, organization: Organization, endpoint_id) -> WebhookEndpoint:
    return get_or_not_found(
        WebhookEndpoint.objects.filter(organization=organization), endpoint_id, "webhook endpoint"
    )


def event_list(
    *,
    organization: Organization,
    type: str | None = None,
    environment: str | None = None,
    since: datetime | None = None,
) -> QuerySet[Event]:
    events = Event.objects.filter(organization=organization)
    if type:
        events = events.filter(type=type)
    if environment:
        events = events.filter(environment=environment)
    if since is not None:
        events = events.filter(created_at__gte=since)
    return events.order_by("-created_at", "-id")


def event_get(*, organization: Organization, event_id) -> Event:
    """Another org's event, a malformed id and a missing one are all simply not found."""
    if not isinstance(event_id, str) or not EVENT_ID_PATTERN.match(event_id):
        raise NotFound("No such event.")
    event = Event.objects.filter(organization=organization, pk=event_id).first()
    if event is None:
        raise NotFound("No such event.")
    return event


def attempt_list(
    *,
    endpoint: WebhookEndpoint,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
) -> QuerySet[DeliveryAttempt]:
    """The endpoint's delivery log, newest first. `endpoint` comes from `endpoint_get`, so
    the log is already scoped to the caller's organization."""
    attempts = DeliveryAttempt.objects.filter(endpoint=endpoint).select_related("delivery__event")
    if status:
        attempts = attempts.filter(_attempt_status_q(status))
    if event_type:
        attempts = attempts.filter(delivery__event__type=event_type)
    if since is not None:
        attempts = attempts.filter(attempted_at__gte=since)
    return attempts.order_by("-attempted_at", "-id")


def _attempt_status_q(status: str) -> Q:
    if status == "succeeded":
        return _succeeded_q()
    if status == "failed":
        return ~_succeeded_q() | Q(status_code__isnull=True)
    if status == "no_response":
        return Q(status_code__isnull=True)
    if status in ("2xx", "3xx", "4xx", "5xx"):
        low = int(status[0]) * 100
        return Q(status_code__gte=low, status_code__lt=low + 100)
    raise InvalidInput(
        f"status must be one of: {', '.join(ATTEMPT_STATUS_FILTERS)}.",
        field="status",
        code="invalid_filter",
    )
