"""Management API for tenancy: projects, audit log, health."""

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from common.pagination import CreatedCursorPagination
from common.redis import get_redis
from portal import selectors, services
from portal.api_base import OrgApiView
from portal.exports import AUDIT_CSV_COLUMNS, audit_log_csv_response
from portal.models import AuditLogEntry, Project
from portal.schema import paginated, problems

PROJECT_EXAMPLE = {
    "id": "647350d3-ba70-4b5a-9035-4fbbb1b4f8e0",
    "name": "Payments API",
    "description": "Card payments, EU region",
    "created_at": "2026-11-25T19:03:58.362414Z",
}


class ProjectOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at"]


def paginate(view, queryset, serializer_class) -> Response:
    paginator = CreatedCursorPagination()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class ProjectListApi(OrgApiView):
    required_scopes = {"GET": "projects:read", "POST": "projects:write"}

    @extend_schema_serializer(component_name="ProjectCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    @extend_schema(
        operation_id="projects_list",
        responses={
            200: paginated(ProjectOutputSerializer, "PaginatedProjectList"),
            **problems(401, 403),
        },
        parameters=[OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
        examples=[
            OpenApiExample(
                "A page of projects",
                response_only=True,
                value={
                    "next": "https://tollgate.example.com/api/v1/projects?cursor=cD0yMDI2LTExLTI1KzE5JTNBMDMlM0E1OC4zNjI0MTQlMkIwMCUzQTAw&limit=1",
                    "previous": None,
                    "results": [PROJECT_EXAMPLE],
                },
            )
        ],
    )
    def get(self, request):
        return paginate(
            self, selectors.project_list(organization=self.organization), ProjectOutputSerializer
        )

    @extend_schema(
        operation_id="projects_create",
        request=InputSerializer,
        responses={201: ProjectOutputSerializer, **problems(400, 401, 403, 409, 422)},
        examples=[
            OpenApiExample(
                "Create a project",
                request_only=True,
                value={"name": "Payments API", "description": "Card payments, EU region"},
            ),
            OpenApiExample(
                "The project", response_only=True, status_codes=["201"], value=PROJECT_EXAMPLE
            ),
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(
            actor=self.actor, organization=self.organization, **data.validated_data
        )
        return Response(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(OrgApiView):
    required_scopes = {"GET": "projects:read"}

    @extend_schema(
        operation_id="projects_retrieve",
        responses={200: ProjectOutputSerializer, **problems(401, 403, 404)},
        examples=[OpenApiExample("A project", response_only=True, value=PROJECT_EXAMPLE)],
    )
    def get(self, request, project_id):
        project = selectors.project_get(organization=self.organization, project_id=project_id)
        return Response(ProjectOutputSerializer(project).data)


class AuditLogEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditLogEntry
        fields = AUDIT_CSV_COLUMNS  # the API and the CSV export show the same columns


class ExportFormatNegotiation(DefaultContentNegotiation):
    """`?format=` names the export format the view writes (json or csv), not a DRF renderer.

    DRF reads `?format=` as a renderer override and answers 404 when no renderer has that
    format; every response here that goes through a renderer, errors included, is JSON.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AuditLogApi(OrgApiView):
    """The org's audit log; `?format=csv` streams every matching row as CSV."""

    required_scopes = {"GET": "audit:read"}
    content_negotiation_class = ExportFormatNegotiation

    class FilterSerializer(serializers.Serializer):
        action = serializers.CharField(required=False, max_length=100)
        actor = serializers.CharField(required=False, max_length=255)
        target_id = serializers.CharField(required=False, max_length=100)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")

    @extend_schema(
        operation_id="audit_log_list",
        parameters=[
            FilterSerializer,
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses={
            200: paginated(AuditLogEntrySerializer, "PaginatedAuditLogEntryList"),
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = dict(filters.validated_data)
        output_format = params.pop("format")
        entries = selectors.audit_log_list(organization=self.organization, **params)
        if output_format == "csv":
            return audit_log_csv_response(entries, "audit-log.csv")
        return paginate(self, entries, AuditLogEntrySerializer)


HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.CharField(help_text="`ok`, or `degraded` (with a 503)."),
        "database": serializers.CharField(help_text="`ok` or `unavailable`."),
        "cache": serializers.CharField(help_text="`ok` or `unavailable`."),
    },
)


class HealthApi(APIView):
    """Liveness and dependencies, for load balancers and operators; needs no token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        auth=[],
        responses={
            200: HEALTH,
            503: HEALTH,
        },
        examples=[
            OpenApiExample(
                "Healthy",
                response_only=True,
                status_codes=["200"],
                value={"status": "ok", "database": "ok", "cache": "ok"},
            ),
            OpenApiExample(
                "Redis is down",
                response_only=True,
                status_codes=["503"],
                value={"status": "degraded", "database": "ok", "cache": "unavailable"},
            ),
        ],
    )
    def get(self, request):
        checks = {"database": _check_database(), "cache": _check_cache()}
        healthy = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "ok" if healthy else "degraded", **checks},
            status=200 if healthy else 503,
        )


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        return "unavailable"


def _check_cache() -> str:
    try:
        get_redis().ping()
        return "ok"
    except Exception:
        return "unavailable"
