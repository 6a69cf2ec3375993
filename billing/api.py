"""Management API for metering: meters, event ingestion, corrections, usage and CSV export."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.ingest import MAX_BATCH, usage_ingest
from billing.models import Meter
from billing.usage_csv import export_lines
from common.errors import InvalidInput, NotFound, PayloadTooLarge
from keys.models import ApiKey
from portal.api_base import OperatorApiView
from portal.audit import Actor
from portal.models import ApiToken
from portal.schema import problems, results_list

MAX_WINDOW = timedelta(days=366)

METER_EXAMPLE = {
    "id": "78f2be52-0b99-486f-a888-6afbee73edaf",
    "code": "requests",
    "name": "API requests",
    "unit": "request",
    "aggregation": "count",
    "unique_property": "",
    "display_unit": "request",
    "display_factor": "1.000000000000",
    "created_at": "2026-11-25T19:03:56.355377Z",
}


class DecimalJSONParser(JSONParser):
    """JSON with numbers read as Decimal, so 0.1 stays exactly 0.1 on its way to the ledger."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.loads(stream.read(), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from error


class MeterSerializer(serializers.ModelSerializer):
    display_unit = serializers.CharField(source="shown_unit", read_only=True)

    class Meta:
        model = Meter
        fields = [
            "id",
            "code",
            "name",
            "unit",
            "aggregation",
            "unique_property",
            "display_unit",
            "display_factor",
            "created_at",
        ]


class MeterListApi(APIView):
    """Operators define meters; customers' tokens may read them to label their usage."""

    scopes_by_kind = {
        ApiToken.Kind.OPERATOR: {"GET": "admin", "POST": "admin"},
        ApiToken.Kind.ORG: {"GET": "usage:read"},
    }
    pagination_class = None

    @extend_schema_serializer(component_name="MeterCreateInput")
    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)
        name = serializers.CharField(max_length=200)
        unit = serializers.CharField(max_length=64)
        aggregation = serializers.ChoiceField(choices=Meter.Aggregation.choices)
        unique_property = serializers.CharField(max_length=100, required=False, allow_blank=True)
        display_unit = serializers.CharField(max_length=64, required=False, allow_blank=True)
        display_factor = serializers.DecimalField(
            max_digits=24, decimal_places=12, required=False, coerce_to_string=True
        )

    @extend_schema(
        operation_id="meters_list",
        responses={200: results_list(MeterSerializer, "MeterList"), **problems(401, 403)},
        examples=[
            OpenApiExample("The meters", response_only=True, value={"results": [METER_EXAMPLE]})
        ],
    )
    def get(self, request):
        return Response({"results": MeterSerializer(selectors.meter_list(), many=True).data})

    @extend_schema(
        operation_id="meters_create",
        request=InputSerializer,
        responses={201: MeterSerializer, **problems(400, 401, 403, 409)},
        examples=[
            OpenApiExample(
                "GPU time shown as AI minutes",
                request_only=True,
                value={
                    "code": "gpu_seconds",
                    "name": "GPU time",
                    "unit": "GPU-second",
                    "aggregation": "sum",
                    "display_unit": "AI minutes",
                    "display_factor": "0.016666666667",
                },
            ),
            OpenApiExample(
                "The meter",
                response_only=True,
                status_codes=["201"],
                value={
                    "id": "3a51d2b7-82a7-4571-92c0-0f44192a796e",
                    "code": "gpu_seconds",
                    "name": "GPU time",
                    "unit": "GPU-second",
                    "aggregation": "sum",
                    "unique_property": "",
                    "display_unit": "AI minutes",
                    "display_factor": "0.016666666667",
                    "created_at": "2026-11-25T19:03:56.363382Z",
                },
            ),
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        meter = services.meter_create(actor=Actor.from_request(request), **data.validated_data)
        return Response(MeterSerializer(meter).data, status=status.HTTP_201_CREATED)


class UsageEventsApi(OperatorApiView):
    """Batches of up to 1,000 events; each event's `id` makes a retry harmless."""

    required_scopes = {"POST": "usage:write"}
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        operation_id="usage_events_ingest",
        request={
            "application/json": {
                "type": "object",
                "required": ["events"],
                "properties": {
                    "events": {"type": "array", "maxItems": MAX_BATCH, "items": {"type": "object"}}
                },
            }
        },
        responses={
            202: {
                "type": "object",
                "required": ["accepted", "duplicates", "rejected"],
                "properties": {
                    "accepted": {"type": "integer"},
                    "duplicates": {"type": "integer"},
                    "rejected": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["index", "code", "detail"],
                            "properties": {
                                "index": {"type": "integer"},
                                "code": {"type": "string"},
                                "detail": {"type": "string"},
                            },
                        },
                    },
                },
            },
            **problems(400, 401, 403, 413, 422),
        },
        examples=[
            OpenApiExample(
                "A batch of three events",
                request_only=True,
                value={
                    "events": [
                        {"id": "req_7f3a91", "meter": "requests", "customer": "acme"},
                        {
                            "id": "job-42-chunk-1",
                            "meter": "records_processed",
                            "customer": "acme",
                            "project": "647350d3-ba70-4b5a-9035-4fbbb1b4f8e0",
                            "quantity": "1500",
                            "timestamp": "2026-11-25T10:15:00Z",
                            "properties": {"job": "42"},
                        },
                        {"id": "req_7f3a92", "meter": "reqs", "customer": "acme"},
                    ]
                },
            ),
            OpenApiExample(
                "Two accepted, one refused",
                response_only=True,
                status_codes=["202"],
                value={
                    "accepted": 2,
                    "duplicates": 0,
                    "rejected": [
                        {
                            "index": 2,
                            "code": "unknown_meter",
                            "detail": "No meter with code 'reqs'.",
                        }
                    ],
                },
            ),
            OpenApiExample(
                "The same batch again: counted once",
                response_only=True,
                status_codes=["202"],
                value={
                    "accepted": 0,
                    "duplicates": 2,
                    "rejected": [
                        {
                            "index": 2,
                            "code": "unknown_meter",
                            "detail": "No meter with code 'reqs'.",
                        }
                    ],
                },
            ),
        ],
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise InvalidInput('Send {"events": [...]}.', field="events")
        events = body["events"]
        if len(events) > MAX_BATCH:
            raise PayloadTooLarge(
                f"At most {MAX_BATCH} events per request; this one has {len(events)}.",
                code="batch_too_large",
            )
        result = usage_ingest(events=events)
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": [vars(rejection) for rejection in result.rejected],
            },
            status=status.HTTP_202_ACCEPTED,
        )


class UsageCorrectionsApi(OperatorApiView):
    required_scopes = {"POST": "usage:write"}

    @extend_schema_serializer(component_name="UsageCorrectionInput")
    class InputSerializer(serializers.Serializer):
        event_id = serializers.CharField(max_length=255)
        customer = serializers.CharField(max_length=100)
        reason = serializers.CharField(max_length=2000)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        event_id = serializers.CharField()
        customer = serializers.CharField(source="organization.slug")
        original_ledger_id = serializers.IntegerField()
        reversal_ledger_id = serializers.IntegerField()
        reason = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="usage_corrections_create",
        request=InputSerializer,
        responses={201: OutputSerializer, **problems(400, 401, 403, 404, 409)},
        examples=[
            OpenApiExample(
                "Reverse a test call",
                request_only=True,
                value={
                    "event_id": "req_7f3a91",
                    "customer": "acme",
                    "reason": "Load test sent with a live key.",
                },
            ),
            OpenApiExample(
                "The correction",
                response_only=True,
                status_codes=["201"],
                value={
                    "id": "c3b0e8f4-5a0d-4f2e-8a61-0d9b7e2c4f11",
                    "event_id": "req_7f3a91",
                    "customer": "acme",
                    "original_ledger_id": 1842,
                    "reversal_ledger_id": 1907,
                    "reason": "Load test sent with a live key.",
                    "created_at": "2026-11-25T11:02:13.582114Z",
                },
            ),
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organization = selectors.organization_get(data.validated_data["customer"])
        correction = services.usage_correct(
            actor=self.actor,
            organization=organization,
            event_id=data.validated_data["event_id"],
            reason=data.validated_data["reason"],
        )
        correction.organization = organization
        return Response(self.OutputSerializer(correction).data, status=status.HTTP_201_CREATED)


class UsageFilterSerializer(serializers.Serializer):
    meter = serializers.CharField(max_length=64)
    customer = serializers.CharField(max_length=100, required=False)
    environment = serializers.ChoiceField(choices=["live", "test"], default="live")
    project = serializers.UUIDField(required=False)
    api_key = serializers.UUIDField(required=False, help_text="the key's id")
    endpoint = serializers.CharField(max_length=255, required=False)
    group_by = serializers.CharField(
        required=False, help_text="comma-separated: " + ", ".join(selectors.GROUPS)
    )
    # `from` is a Python keyword, so the fields are declared below under their wire names.

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(required=False)
        fields["to"] = serializers.DateTimeField(required=False)
        return fields

    def validate_group_by(self, value: str) -> tuple[str, ...]:
        groups = tuple(part.strip() for part in value.split(",") if part.strip())
        unknown = [group for group in groups if group not in selectors.GROUPS]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown group {', '.join(unknown)}; use {', '.join(selectors.GROUPS)}."
            )
        if len(set(groups)) != len(groups):
            raise serializers.ValidationError("A group is named twice.")
        return groups


USAGE_PARAMETERS = [
    UsageFilterSerializer,
    OpenApiParameter("from", OpenApiTypes.DATETIME),
    OpenApiParameter("to", OpenApiTypes.DATETIME),
]


class _UsageReadApi(APIView):
    scopes_by_kind = {
        ApiToken.Kind.ORG: {"GET": "usage:read"},
        ApiToken.Kind.OPERATOR: {"GET": "usage:write"},
    }

    def usage_filter(self, request) -> selectors.UsageFilter:
        params = UsageFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        token = request.auth
        if token.kind == ApiToken.Kind.OPERATOR:
            if not data.get("customer"):
                raise InvalidInput("Operator tokens name the customer.", field="customer")
            organization = selectors.organization_get(data["customer"])
        else:
            organization = token.organization
            if data.get("customer") not in (None, organization.slug, str(organization.id)):
                raise NotFound("No such customer.")
        meter = selectors.meter_get_by_code(data["meter"])
        if meter is None:
            raise InvalidInput(f"No meter '{data['meter']}'.", field="meter", code="unknown_meter")
        now = timezone.now()
        start = data.get("from") or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = data.get("to") or now
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            raise InvalidInput("'to' must be after 'from'.", field="to", code="invalid_window")
        if end - start > MAX_WINDOW:
            raise InvalidInput(
                "A window spans at most 366 days.", field="to", code="invalid_window"
            )
        api_key_id = data.get("api_key")
        if (
            api_key_id
            and not ApiKey.objects.filter(id=api_key_id, organization=organization).exists()
        ):
            raise NotFound("No such API key.")
        return selectors.UsageFilter(
            organization_id=organization.id,
            meter=meter,
            start=start,
            end=end,
            environment=data["environment"],
            project_id=data.get("project"),
            api_key_id=api_key_id,
            endpoint=data.get("endpoint"),
            group_by=data.get("group_by", ()),
        )


def _jsonable(group: str, value):
    if value is None:
        return None
    if group == "day":
        return value.isoformat()
    if group == "hour":
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


USAGE_QUERY_RESULT = inline_serializer(
    "UsageQueryResult",
    {
        "meter": serializers.CharField(),
        "aggregation": serializers.ChoiceField(choices=Meter.Aggregation.choices),
        "unit": serializers.CharField(),
        "display_unit": serializers.CharField(),
        "environment": serializers.ChoiceField(choices=ApiKey.Environment.choices),
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "group_by": serializers.ListField(child=serializers.ChoiceField(choices=selectors.GROUPS)),
        "results": inline_serializer(
            "UsageQueryRow",
            {
                "quantity": serializers.DecimalField(max_digits=40, decimal_places=12),
                "display_quantity": serializers.DecimalField(max_digits=40, decimal_places=6),
                "day": serializers.DateField(required=False),
                "hour": serializers.DateTimeField(required=False),
                "project": serializers.UUIDField(required=False, allow_null=True),
                "key": serializers.UUIDField(required=False, allow_null=True),
                "endpoint": serializers.CharField(required=False, allow_null=True),
            },
            many=True,
            help_text="One row in total, or one per group; only the groups asked for appear.",
        ),
    },
)


class UsageApi(_UsageReadApi):
    """Usage of one meter over a window, in total or grouped, read from rollups."""

    @extend_schema(
        operation_id="usage_query",
        parameters=USAGE_PARAMETERS,
        responses={200: USAGE_QUERY_RESULT, **problems(400, 401, 403, 404)},
        examples=[
            OpenApiExample(
                "Requests per day in January",
                response_only=True,
                value={
                    "meter": "requests",
                    "aggregation": "count",
                    "unit": "request",
                    "display_unit": "request",
                    "environment": "live",
                    "from": "2026-01-01T00:00:00Z",
                    "to": "2026-02-01T00:00:00Z",
                    "group_by": ["day"],
                    "results": [
                        {"day": "2026-01-05", "quantity": "1", "display_quantity": "1"},
                        {"day": "2026-01-06", "quantity": "40", "display_quantity": "40"},
                    ],
                },
            )
        ],
    )
    def get(self, request):
        usage = self.usage_filter(request)
        results = []
        for row in selectors.usage_aggregate(usage):
            quantity = row.pop("quantity")
            item = {group: _jsonable(group, value) for group, value in row.items()}
            item["quantity"] = selectors.format_decimal(quantity)
            item["display_quantity"] = selectors.format_decimal(
                selectors.display_quantity(usage.meter, quantity)
            )
            results.append(item)
        return Response(
            {
                "meter": usage.meter.code,
                "aggregation": usage.meter.aggregation,
                "unit": usage.meter.unit,
                "display_unit": usage.meter.shown_unit,
                "environment": usage.environment,
                "from": usage.start.isoformat().replace("+00:00", "Z"),
                "to": usage.end.isoformat().replace("+00:00", "Z"),
                "group_by": list(usage.group_by),
                "results": results,
            }
        )


class UsageExportApi(_UsageReadApi):
    """Every ledger row behind a usage figure, streamed: the evidence for an invoice line."""

    @extend_schema(
        operation_id="usage_export_csv",
        parameters=USAGE_PARAMETERS,
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        usage = self.usage_filter(request)
        response = StreamingHttpResponse(
            export_lines(selectors.usage_export_rows(usage)), content_type="text/csv"
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = (
            f'attachment; filename="usage-{usage.meter.code}-{stamp}.csv"'
        )
        return response
