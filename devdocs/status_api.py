"""POST /api/v1/gate/outcomes: what the provider's API answered to calls the gate let through.

The middleware (tollgate/middleware.py) or a gateway that calls /api/v1/verify reports, in
batches, each passed call's upstream status and duration; they feed the status page
(devdocs/health.py). The endpoint is named by its id, or by method + path matched exactly
as the gate matches them (keys.gate.EndpointCatalog), so a reporter sends only what it
already knows. Every item is checked on its own: good ones are recorded, bad ones come back
in `errors` with their index and a stable code; only a body that is not a batch at all is
refused whole, with problem+json.
"""

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.errors import InvalidInput, PayloadTooLarge
from devdocs.health import ENVIRONMENTS, NO_ANSWER, Outcome, record_outcomes
from keys.gate import VerifyInput
from keys.gate_api import METHODS, process_gate
from keys.models import Endpoint
from portal.api_base import OperatorApiView

MAX_BATCH = 1000
MAX_AGE = timedelta(days=3)  # older outcomes are refused: uptime history is not rewritten
MAX_AHEAD = timedelta(minutes=5)  # clock skew allowed between the reporter and us
MAX_DURATION_MS = 3_600_000.0  # an hour: anything longer is a unit mistake


class Rejected(Exception):
    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class _Item:
    index: int
    endpoint_id: str | None
    match: VerifyInput | None
    environment: str
    status: int
    duration_ms: float
    at: datetime


def _text(item: dict, name: str, max_length: int, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise Rejected(
            f"invalid_{name}", f"{name} must be a string of 1 to {max_length} characters."
        )
    return value


def _duration(value) -> float | None:
    """duration_ms as a float, or None when it is not a number from 0 to MAX_DURATION_MS.

    Compared before any conversion: JSON allows integers of hundreds of digits, which
    float() and math.isfinite() refuse with OverflowError, and 1e400, which parses to inf.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not 0 <= value <= MAX_DURATION_MS:
        return None
    return float(value)


def _moment(value) -> datetime | None:
    """`at` as an aware datetime, or None. parse_datetime raises ValueError for text shaped
    like a time but impossible (month 13, an offset of 99 hours): that is a bad item too."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        at = parse_datetime(value)
    except ValueError:
        return None
    if at is None or at.tzinfo is None:
        return None
    return at


def _parse_item(index: int, item, now: datetime) -> _Item:
    if not isinstance(item, dict):
        raise Rejected("invalid_outcome", "Each outcome is a JSON object.")
    _text(item, "request_id", 128, required=False)
    environment = item.get("environment")
    if environment not in ENVIRONMENTS:
        raise Rejected("invalid_environment", 'environment must be "live" or "test".')
    status_code = item.get("status")
    if (
        isinstance(status_code, bool)
        or not isinstance(status_code, int)
        or not (status_code == NO_ANSWER or 100 <= status_code <= 599)
    ):
        raise Rejected(
            "invalid_status", "status must be an HTTP status from 100 to 599, or 0 for no answer."
        )
    duration = _duration(item.get("duration_ms"))
    if duration is None:
        raise Rejected(
            "invalid_duration", f"duration_ms must be a number from 0 to {MAX_DURATION_MS:.0f}."
        )
    at = _moment(item.get("at"))
    if at is None:
        raise Rejected("invalid_at", "at must be an ISO 8601 time with a zone.")
    if at > now + MAX_AHEAD:
        raise Rejected("at_in_future", "at is in the future.")
    if at < now - MAX_AGE:
        raise Rejected("at_too_old", f"at is more than {MAX_AGE.days} days ago.")

    endpoint = item.get("endpoint")
    match = None
    if endpoint is not None:
        try:
            endpoint = str(uuid.UUID(str(endpoint)))
        except ValueError:
            raise Rejected("invalid_endpoint", "endpoint must be an endpoint id (UUID).") from None
    else:
        method = _text(item, "method", 10, required=True).upper()
        if method not in METHODS:
            raise Rejected("invalid_method", f"method must be one of {', '.join(METHODS)}.")
        path = _text(item, "path", 2048, required=True)
        if not path.startswith("/"):
            raise Rejected("invalid_path", "path must start with '/'.")
        match = VerifyInput(
            key="",
            method=method,
            path=path,
            product=_text(item, "product", 64, required=False),
            version=_text(item, "version", 32, required=False),
        )
    return _Item(index, endpoint, match, environment, status_code, duration, at)


@dataclass
class OutcomesResult:
    accepted: int
    errors: list[dict]


def outcomes_accept(items: list) -> OutcomesResult:
    """Check every item, resolve its endpoint, record the good ones in one go."""
    now = timezone.now()
    errors: list[dict] = []
    parsed: list[_Item] = []
    for index, item in enumerate(items):
        try:
            parsed.append(_parse_item(index, item, now))
        except Rejected as rejected:
            errors.append({"index": index, "code": rejected.code, "detail": rejected.detail})
    named = {item.endpoint_id for item in parsed if item.endpoint_id}
    known = {str(pk) for pk in Endpoint.objects.filter(pk__in=named).values_list("pk", flat=True)}
    catalog = process_gate().catalog
    outcomes = []
    for item in parsed:
        endpoint_id = item.endpoint_id
        if endpoint_id is not None:
            if endpoint_id not in known:
                errors.append(
                    {"index": item.index, "code": "endpoint_unknown", "detail": "No such endpoint."}
                )
                continue
        else:
            code, endpoint = catalog.match(item.match)
            if endpoint is None:
                detail = {
                    "endpoint_ambiguous": "The path matches endpoints of several products; "
                    "send product (and version).",
                }.get(code, "No live endpoint matches this method and path.")
                errors.append({"index": item.index, "code": code, "detail": detail})
                continue
            endpoint_id = str(endpoint.id)
        outcomes.append(
            Outcome(
                endpoint_id=endpoint_id,
                environment=item.environment,
                status=item.status,
                duration_ms=item.duration_ms,
                at=item.at,
            )
        )
    accepted = record_outcomes(outcomes)
    errors.sort(key=lambda error: error["index"])
    return OutcomesResult(accepted=accepted, errors=errors)


class GateOutcomeSerializer(serializers.Serializer):
    """Documentation of one outcome (the view checks items itself, one by one)."""

    request_id = serializers.CharField(required=False, max_length=128)
    endpoint = serializers.UUIDField(
        required=False, help_text="The endpoint's id; or send method and path instead."
    )
    product = serializers.CharField(required=False, max_length=64)
    version = serializers.CharField(required=False, max_length=32)
    method = serializers.ChoiceField(choices=METHODS, required=False)
    path = serializers.CharField(
        required=False, max_length=2048, help_text="The called path, as sent to /verify."
    )
    status = serializers.IntegerField(
        min_value=0, max_value=599, help_text="The upstream answer's status; 0 for no answer."
    )
    duration_ms = serializers.FloatField(min_value=0, max_value=MAX_DURATION_MS)
    at = serializers.DateTimeField(help_text="When the call started, with a zone.")
    environment = serializers.ChoiceField(choices=ENVIRONMENTS)


class GateOutcomesSerializer(serializers.Serializer):
    outcomes = GateOutcomeSerializer(many=True, max_length=MAX_BATCH)


class GateOutcomeErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()


class GateOutcomesResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = GateOutcomeErrorSerializer(many=True)


class GateOutcomesApi(OperatorApiView):
    """Batches of up to 1,000 call outcomes; 202 with what was recorded and what was not."""

    required_scopes = {"POST": "gate:verify"}

    @extend_schema(
        operation_id="gate_outcomes_report",
        summary="Report the provider API's answers to calls the gate allowed",
        request=GateOutcomesSerializer,
        responses={202: GateOutcomesResultSerializer},
        examples=[
            OpenApiExample(
                "Two outcomes",
                request_only=True,
                value={
                    "outcomes": [
                        {
                            "request_id": "req_5f0c2a",
                            "product": "documents",
                            "version": "v1",
                            "method": "GET",
                            "path": "/v1/documents/42",
                            "status": 200,
                            "duration_ms": 12.3,
                            "at": "2026-11-25T10:00:00Z",
                            "environment": "live",
                        },
                        {
                            "endpoint": "0b8e7c52-4a8e-4f57-9d0c-6f1b1d0e1f3a",
                            "status": 503,
                            "duration_ms": 30000,
                            "at": "2026-11-25T10:00:01Z",
                            "environment": "live",
                        },
                    ]
                },
            ),
            OpenApiExample(
                "One rejected",
                response_only=True,
                status_codes=["202"],
                value={
                    "accepted": 1,
                    "rejected": 1,
                    "errors": [
                        {"index": 1, "code": "endpoint_unknown", "detail": "No such endpoint."}
                    ],
                },
            ),
        ],
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("outcomes"), list):
            raise InvalidInput('Send {"outcomes": [...]}.', field="outcomes")
        items = body["outcomes"]
        if len(items) > MAX_BATCH:
            raise PayloadTooLarge(
                f"At most {MAX_BATCH} outcomes per request; this one has {len(items)}.",
                code="batch_too_large",
            )
        result = outcomes_accept(items)
        return Response(
            {
                "accepted": result.accepted,
                "rejected": len(result.errors),
                "errors": result.errors,
            },
            status=status.HTTP_202_ACCEPTED,
        )
