"""Management API for metering: meters, event ingestion, corrections, usage and CSV export."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
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

MAX_WINDOW = timedelta(days=366)


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

    @extend_schema(operation_id="meters_list", responses=MeterSerializer(many=True))
    def get(self, request):
        return Response({"results": MeterSerializer(selectors.meter_list(), many=True).data})

    @extend_schema(
        operation_id="meters_create", request=InputSerializer, responses={201: MeterSerializer}
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
                "properties": {
                    "accepted": {"type": "integer"},
                    "duplicates": {"type": "integer"},
                    "rejected": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "index": {"type": "integer"},
                                "code": {"type": "string"},
                                "detail": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
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
        responses={201: OutputSerializer},
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


class UsageApi(_UsageReadApi):
    """Usage of one meter over a window, in total or grouped, read from rollups."""

    @extend_schema(
        operation_id="usage_query",
        parameters=USAGE_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT},
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
