"""Management API for tenancy: projects, audit log, health."""

from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
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
        responses=ProjectOutputSerializer(many=True),
        parameters=[OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
    )
    def get(self, request):
        return paginate(
            self, selectors.project_list(organization=self.organization), ProjectOutputSerializer
        )

    @extend_schema(
        operation_id="projects_create",
        request=InputSerializer,
        responses={201: ProjectOutputSerializer},
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

    @extend_schema(operation_id="projects_retrieve", responses=ProjectOutputSerializer)
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
        responses={200: AuditLogEntrySerializer(many=True), (200, "text/csv"): OpenApiTypes.STR},
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


class HealthApi(APIView):
    """Liveness and dependencies, for load balancers and operators; needs no token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        auth=[],
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "database": serializers.CharField(),
                    "cache": serializers.CharField(),
                },
            ),
            503: OpenApiTypes.OBJECT,
        },
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
