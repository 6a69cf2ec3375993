"""Management API for API keys: issue, list, read, rotate, revoke."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from keys import selectors, services
from keys.models import ApiKey, ApiVersion, Endpoint
from portal.api import paginate
from portal.api_base import OrgApiView
from portal.audit import Actor
from portal.models import ApiToken
from portal.selectors import project_get


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
        responses=KeyOutputSerializer(many=True),
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
        responses={201: KeyWithSecretSerializer},
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

    @extend_schema(operation_id="keys_retrieve", responses=KeyOutputSerializer)
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
        responses={201: KeyWithSecretSerializer},
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

    @extend_schema(operation_id="keys_revoke", request=None, responses=KeyOutputSerializer)
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
        operation_id="api_versions_list", responses=ApiVersionOutputSerializer(many=True)
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
