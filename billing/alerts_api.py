"""Management API for alerts and bill simulation: thresholds, firings, `POST /simulations`.

Org tokens act on their own organization; operator tokens (`admin`) name one with
`organization` (slug or id), in the body or the query string.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import alerts
from billing import subscriptions as subs
from billing.api import DecimalJSONParser
from billing.models import AlertFiring, AlertThreshold
from billing.pricing.money import format_exact, format_money
from billing.pricing_api import quote_schema
from billing.quotes import quote_as_json
from billing.selectors import organization_get
from billing.simulations import DEFAULT_PERIODS, Simulation, simulate
from common.errors import InvalidInput
from common.lookups import get_or_not_found
from common.pagination import CreatedCursorPagination
from portal.audit import Actor
from portal.models import ApiToken, Organization
from portal.schema import paginated, problems

JSON_BODY = {"application/json": OpenApiTypes.OBJECT}
ORGANIZATION_PARAM = OpenApiParameter(
    "organization", str, description="operator tokens only: the organization's slug or id"
)
PAGE_PARAMS = [OpenApiParameter("cursor", str), OpenApiParameter("limit", int)]


# OpenAPI shapes of threshold_json, firing_json and simulation_json below.
THRESHOLD = inline_serializer(
    "AlertThreshold",
    {
        "id": serializers.UUIDField(),
        "kind": serializers.CharField(),
        "meter": serializers.CharField(allow_null=True),
        "value": serializers.CharField(help_text="A decimal string."),
        "set_by_operator": serializers.BooleanField(),
        "created_at": serializers.DateTimeField(),
    },
)
FIRING = inline_serializer(
    "AlertFiring",
    {
        "id": serializers.UUIDField(),
        "source": serializers.CharField(),
        "threshold": serializers.UUIDField(allow_null=True),
        "kind": serializers.CharField(),
        "meter": serializers.CharField(allow_null=True),
        "period_start": serializers.DateTimeField(),
        "value": serializers.CharField(help_text="A decimal string."),
        "limit": serializers.CharField(help_text="A decimal string."),
        "fired_at": serializers.DateTimeField(),
    },
)
SIMULATION = inline_serializer(
    "Simulation",
    {
        "plan": serializers.CharField(),
        "version": serializers.IntegerField(),
        "currency": serializers.CharField(),
        "as_of": serializers.DateTimeField(),
        "periods": inline_serializer(
            "SimulatedPeriod",
            {
                "start": serializers.DateTimeField(),
                "end": serializers.DateTimeField(),
                "partial": serializers.BooleanField(),
                "actual": quote_schema(),
                "simulated": quote_schema(),
                "difference": serializers.CharField(),
            },
            many=True,
        ),
        "actual_total": serializers.CharField(),
        "simulated_total": serializers.CharField(),
        "difference": serializers.CharField(),
    },
)


class FiringCursorPagination(CreatedCursorPagination):
    ordering = ("-fired_at", "-id")


def _is_operator(request) -> bool:
    return isinstance(request.auth, ApiToken) and request.auth.kind == ApiToken.Kind.OPERATOR


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise InvalidInput("Send a JSON object.")
    return request.data


def _organization(request, data: dict | None = None) -> Organization:
    """The org token's own organization (anything it names is ignored), or the one an
    operator token names."""
    if not _is_operator(request):
        return request.auth.organization
    data = data or {}
    reference = (
        data.get("organization")
        or data.get("customer")
        or request.query_params.get("organization")
        or request.query_params.get("customer")
    )
    if not reference or not isinstance(reference, str):
        raise InvalidInput("Operator tokens name the organization.", field="organization")
    return organization_get(reference)


def threshold_json(threshold: AlertThreshold) -> dict:
    return {
        "id": str(threshold.id),
        "kind": threshold.kind,
        "meter": threshold.meter.code if threshold.meter_id else None,
        "value": format_exact(threshold.value),
        "set_by_operator": threshold.set_by_operator,
        "created_at": threshold.created_at,
    }


def firing_json(firing: AlertFiring) -> dict:
    return {
        "id": str(firing.id),
        "source": firing.source,
        "threshold": str(firing.threshold_id) if firing.threshold_id else None,
        "kind": firing.threshold.kind if firing.threshold_id else "soft_quota",
        "meter": firing.meter or None,
        "period_start": firing.period_start,
        "value": format_exact(firing.value),
        "limit": format_exact(firing.limit),
        "fired_at": firing.fired_at,
    }


def _paginate(view, queryset, paginator, to_json) -> Response:
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response([to_json(row) for row in page])


class _AlertsApi(APIView):
    scopes_by_kind = {
        ApiToken.Kind.ORG: {
            "GET": "billing:read",
            "POST": "billing:write",
            "DELETE": "billing:write",
        },
        ApiToken.Kind.OPERATOR: {"GET": "admin", "POST": "admin", "DELETE": "admin"},
    }
    parser_classes = [DecimalJSONParser]


class AlertThresholdListApi(_AlertsApi):
    @extend_schema(
        operation_id="alert_thresholds_list",
        parameters=[ORGANIZATION_PARAM, *PAGE_PARAMS],
        responses={200: paginated(THRESHOLD, "PaginatedAlertThresholdList"), **problems(401, 403)},
    )
    def get(self, request):
        organization = _organization(request)
        return _paginate(
            self,
            alerts.alert_threshold_list(organization=organization),
            CreatedCursorPagination(),
            threshold_json,
        )

    @extend_schema(
        operation_id="alert_thresholds_create",
        request=JSON_BODY,
        responses={201: THRESHOLD, **problems(400, 401, 403)},
    )
    def post(self, request):
        body = _body(request)
        organization = _organization(request, body)
        threshold = alerts.alert_threshold_create(
            actor=Actor.from_request(request),
            organization=organization,
            kind=body.get("kind"),
            value=body.get("value"),
            meter_code=body.get("meter"),
            by_operator=_is_operator(request),
        )
        return Response(threshold_json(threshold), status=status.HTTP_201_CREATED)


class AlertThresholdDetailApi(_AlertsApi):
    @extend_schema(operation_id="alert_thresholds_delete", responses={204: None})
    def delete(self, request, threshold_id):
        if _is_operator(request):
            threshold = get_or_not_found(
                AlertThreshold.objects.select_related("meter", "organization"),
                threshold_id,
                "alert threshold",
            )
        else:
            threshold = alerts.alert_threshold_get(
                organization=request.auth.organization, threshold_id=threshold_id
            )
        alerts.alert_threshold_delete(
            actor=Actor.from_request(request),
            threshold=threshold,
            by_operator=_is_operator(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertFiringListApi(_AlertsApi):
    """Alerts that fired (thresholds and soft quotas), newest first."""

    @extend_schema(
        operation_id="alerts_list",
        parameters=[ORGANIZATION_PARAM, *PAGE_PARAMS],
        responses={200: paginated(FIRING, "PaginatedAlertFiringList"), **problems(401, 403)},
    )
    def get(self, request):
        organization = _organization(request)
        return _paginate(
            self,
            alerts.alert_firing_list(organization=organization),
            FiringCursorPagination(),
            firing_json,
        )


def simulation_json(simulation: Simulation) -> dict:
    currency = simulation.currency
    return {
        "plan": simulation.plan.code,
        "version": simulation.version.number,
        "currency": currency,
        "as_of": simulation.as_of,
        "periods": [
            {
                "start": period.start,
                "end": period.end,
                "partial": period.partial,
                "actual": quote_as_json(period.actual),
                "simulated": quote_as_json(period.simulated),
                "difference": format_money(period.difference, currency),
            }
            for period in simulation.periods
        ],
        "actual_total": format_money(simulation.actual_total, currency),
        "simulated_total": format_money(simulation.simulated_total, currency),
        "difference": format_money(simulation.difference, currency),
    }


class SimulationsApi(APIView):
    """What the last periods would have cost on another plan (nothing is saved)."""

    scopes_by_kind = {
        ApiToken.Kind.ORG: {"POST": "billing:read"},
        ApiToken.Kind.OPERATOR: {"POST": "admin"},
    }
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        operation_id="simulations_create",
        request=JSON_BODY,
        responses={200: SIMULATION, **problems(400, 401, 403, 404)},
    )
    def post(self, request):
        body = _body(request)
        organization = _organization(request, body)
        plan = subs.plan_get(code=body.get("plan"), include_private=_is_operator(request))
        simulation = simulate(
            organization=organization, plan=plan, periods=body.get("periods", DEFAULT_PERIODS)
        )
        return Response(simulation_json(simulation))
