"""Management API for API keys: issue, list, read, rotate, revoke."""

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from keys import selectors, services
from keys.models import ApiKey, ApiVersion, Endpoint
from portal.api import paginate
from portal.api_base import OrgApiView
from portal.audit import Actor
from portal.models import ApiToken
from portal.schema import paginated, problems, results_list
from portal.selectors import project_get

KEY_EXAMPLE = {
    "id": "a5f8652f-9089-41a8-a650-36b65a557bd8",
    "name": "Checkout backend",
    "prefix": "tg_live_WxHEgNyd",
    "project": "647350d3-ba70-4b5a-9035-4fbbb1b4f8e0",
    "environment": "live",
    "scopes": ["read"],
    "expires_at": None,
    "allowed_cidrs": ["203.0.113.0/24"],
    "status": "active",
    "created_at": "2026-11-25T19:03:58.370086Z",
    "last_used_at": None,
    "revoked_at": None,
    "grace_ends_at": None,
    "replaced_by": None,
}
ROTATED_KEY_EXAMPLE = {
    "key": "tg_live_f4dqfx1MZ12vt7bn87dUMEl1ptDw5dSy3RuqXS",
    **KEY_EXAMPLE,
    "id": "fca94758-77c1-44a9-a523-6d51d4fc2935",
    "prefix": "tg_live_f4dqfx1M",
    "created_at": "2026-11-26T08:00:00.000000Z",
}


class AwareDateTimeField(serializers.DateTimeField):
    """Refuses a time without a UTC offset rather than guessing which zone was meant."""

    default_error_messages = {"naive": "Give the time with a time zone (UTC: ...Z)."}

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


class KeyOutputSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=ApiKey.Status.choices, read_only=True)
    project = serializers.UUIDField(source="project_id", read_only=True)
    replaced_by = serializers.UUIDField(source="replaced_by_id", read_only=True, allow_null=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "project",
            "environment",
            "scopes",
            "expires_at",
            "allowed_cidrs",
            "status",
            "created_at",
            "last_used_at",
            "revoked_at",
            "grace_ends_at",
            "replaced_by",
        ]


class KeyWithSecretSerializer(KeyOutputSerializer):
    key = serializers.SerializerMethodField(help_text="The secret. Shown in this response only.")

    class Meta(KeyOutputSerializer.Meta):
        fields = ["key", *KeyOutputSerializer.Meta.fields]

    def get_key(self, obj) -> str:
        return self.context["raw_key"]


def _with_secret(key: ApiKey, raw_key: str) -> dict:
    return KeyWithSecretSerializer(key, context={"raw_key": raw_key}).data


class KeyListApi(OrgApiView):
    required_scopes = {"GET": "keys:read", "POST": "keys:write"}

    class FilterSerializer(serializers.Serializer):
        project = serializers.UUIDField(required=False)
        environment = serializers.ChoiceField(choices=ApiKey.Environment.choices, required=False)
        status = serializers.ChoiceField(choices=ApiKey.Status.choices, required=False)

    @extend_schema_serializer(component_name="KeyCreateInput")
    class InputSerializer(serializers.Serializer):
        project = serializers.UUIDField()
        name = serializers.CharField(max_length=200)
        environment = serializers.ChoiceField(choices=ApiKey.Environment.choices)
        scopes = serializers.ListField(
            child=serializers.CharField(max_length=50), required=False, max_length=50
        )
        expires_at = AwareDateTimeField(required=False, allow_null=True)
        allowed_cidrs = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, max_length=100
        )

    @extend_schema(
        operation_id="keys_list",
        parameters=[
            FilterSerializer,
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses={200: paginated(KeyOutputSerializer, "PaginatedKeyList"), **problems(400, 401)},
        examples=[
            OpenApiExample(
                "A page of keys",
                response_only=True,
                value={
                    "next": "https://tollgate.example.com/api/v1/keys?cursor=cD0yMDI2LTExLTI1KzE5JTNBMDMlM0E1OC4zODM3MjYlMkIwMCUzQTAw&limit=1",
                    "previous": None,
                    "results": [KEY_EXAMPLE],
                },
            )
        ],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        keys = selectors.key_list(
            organization=self.organization,
            project_id=filters.validated_data.get("project"),
            environment=filters.validated_data.get("environment"),
            status=filters.validated_data.get("status"),
        )
        return paginate(self, keys, KeyOutputSerializer)

    @extend_schema(
        operation_id="keys_create",
        request=InputSerializer,
        responses={201: KeyWithSecretSerializer, **problems(400, 401, 403, 404, 422)},
        examples=[
            OpenApiExample(
                "Issue a live key",
                request_only=True,
                value={
                    "project": "647350d3-ba70-4b5a-9035-4fbbb1b4f8e0",
                    "name": "Checkout backend",
                    "environment": "live",
                    "allowed_cidrs": ["203.0.113.0/24"],
                },
            ),
            OpenApiExample(
                "The key with its secret (shown once)",
                response_only=True,
                status_codes=["201"],
                value={"key": "tg_live_WxHEgNyd1uu0K5g9MJIr0OnGfdne2ETb1El1NR", **KEY_EXAMPLE},
            ),
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        project = project_get(organization=self.organization, project_id=fields.pop("project"))
        key, raw_key = services.key_create(actor=self.actor, project=project, **fields)
        return Response(_with_secret(key, raw_key), status=status.HTTP_201_CREATED)


class KeyDetailApi(OrgApiView):
    required_scopes = {"GET": "keys:read"}

    @extend_schema(
        operation_id="keys_retrieve",
        responses={200: KeyOutputSerializer, **problems(401, 404)},
        examples=[
            OpenApiExample("A key (never its secret)", response_only=True, value=KEY_EXAMPLE)
        ],
    )
    def get(self, request, key_id):
        key = selectors.key_get(organization=self.organization, key_id=key_id)
        return Response(KeyOutputSerializer(key).data)


class KeyRotateApi(OrgApiView):
    required_scopes = {"POST": "keys:write"}

    @extend_schema_serializer(component_name="KeyRotateInput")
    class InputSerializer(serializers.Serializer):
        grace_period_seconds = serializers.IntegerField(
            required=False, min_value=0, max_value=int(services.MAX_GRACE_PERIOD.total_seconds())
        )

    @extend_schema(
        operation_id="keys_rotate",
        request=InputSerializer,
        responses={201: KeyWithSecretSerializer, **problems(400, 401, 404, 409)},
        examples=[
            OpenApiExample(
                "Old key works one more day",
                request_only=True,
                value={"grace_period_seconds": 86400},
            ),
            OpenApiExample(
                "The new key with its secret (shown once)",
                response_only=True,
                status_codes=["201"],
                value=ROTATED_KEY_EXAMPLE,
            ),
        ],
    )
    def post(self, request, key_id):
        # Look the key up first: another org's key is a 404 whatever the body says.
        key = selectors.key_get(organization=self.organization, key_id=key_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new_key, raw_key = services.key_rotate(actor=self.actor, key=key, **data.validated_data)
        return Response(_with_secret(new_key, raw_key), status=status.HTTP_201_CREATED)


class KeyRevokeApi(OrgApiView):
    required_scopes = {"POST": "keys:write"}

    class InputSerializer(serializers.Serializer):
        """No fields; still refuses a malformed, non-JSON or non-object body before revoking."""

    @extend_schema(
        operation_id="keys_revoke",
        request=None,
        responses={200: KeyOutputSerializer, **problems(401, 404)},
        examples=[
            OpenApiExample(
                "The revoked key",
                response_only=True,
                value={
                    **KEY_EXAMPLE,
                    "status": "revoked",
                    "revoked_at": "2026-11-25T19:03:58.394554Z",
                },
            )
        ],
    )
    def post(self, request, key_id):
        key = selectors.key_get(organization=self.organization, key_id=key_id)
        self.InputSerializer(data=request.data).is_valid(raise_exception=True)
        key = services.key_revoke(actor=self.actor, key=key)
        return Response(KeyOutputSerializer(key).data)


class EndpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Endpoint
        fields = [
            "id",
            "method",
            "path_template",
            "operation_id",
            "summary",
            "tags",
            "group",
            "group_source",
            "meter_code",
            "deprecated",
            "sunset_at",
        ]


class ApiVersionOutputSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product.code")
    private = serializers.BooleanField(source="product.private")
    endpoints = EndpointOutputSerializer(many=True)

    class Meta:
        model = ApiVersion
        fields = [
            "id",
            "product",
            "version",
            "title",
            "base_path",
            "private",
            "deprecated_at",
            "sunset_at",
            "created_at",
            "endpoints",
        ]


class ApiVersionListApi(APIView):
    """The provider's API products, uploaded as OpenAPI documents (operator `admin`)."""

    scopes_by_kind = {ApiToken.Kind.OPERATOR: {"GET": "admin", "POST": "admin"}}
    pagination_class = None

    @extend_schema_serializer(component_name="ApiVersionCreateInput")
    class InputSerializer(serializers.Serializer):
        product = serializers.CharField(max_length=64)
        version = serializers.CharField(max_length=32)
        openapi = serializers.JSONField()
        private = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        operation_id="api_versions_list",
        responses=results_list(ApiVersionOutputSerializer, "ApiVersionList"),
    )
    def get(self, request):
        versions = ApiVersion.objects.select_related("product").prefetch_related("endpoints")
        return Response({"results": ApiVersionOutputSerializer(versions, many=True).data})

    @extend_schema(
        operation_id="api_versions_create",
        request=InputSerializer,
        responses={201: ApiVersionOutputSerializer},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_version = services.api_version_create(
            actor=Actor.from_request(request),
            product_code=data.validated_data["product"],
            version=data.validated_data["version"],
            document=data.validated_data["openapi"],
            private=data.validated_data["private"],
        )
        return Response(
            ApiVersionOutputSerializer(api_version).data, status=status.HTTP_201_CREATED
        )
