"""Management API for webhook endpoints, their delivery log, events, re-delivery and replay.

Org tokens only (`webhooks:read` / `webhooks:write`). Every view looks its object up in the
token's organization before it reads the body, so another org's id is a 404 whatever is sent.
"""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from common.pagination import CreatedCursorPagination
from keys.api import AwareDateTimeField
from portal.api import paginate
from portal.api_base import OrgApiView
from portal.schema import paginated, problems
from webhooks import endpoints, selectors
from webhooks.models import DeliveryAttempt, Event, WebhookEndpoint

PAGE_PARAMS = [OpenApiParameter("cursor", str), OpenApiParameter("limit", int)]

ENDPOINT_EXAMPLE = {
    "id": "d63b64cd-171f-4f28-bebb-d97ef8ad7fec",
    "url": "https://hooks.example.com/tollgate",
    "description": "Billing sync",
    "event_types": ["invoice.finalized", "key.created"],
    "environment": "live",
    "status": "enabled",
    "disabled_reason": "",
    "secret_fingerprint": "e0253d16",
    "previous_secret_expires_at": None,
    "created_at": "2026-11-25T19:03:58.489464Z",
    "updated_at": "2026-11-25T19:03:58.489679Z",
}
EVENT_EXAMPLE = {
    "id": "msg_2e1ae020f39744d8b4e884143f942fc5",
    "webhook_id": "msg_2e1ae020f39744d8b4e884143f942fc5",
    "type": "subscription.updated",
    "version": 1,
    "environment": "live",
    "created_at": "2026-11-25T19:03:58.452500Z",
    "data": {
        "id": "0e5f7f6e-a150-433b-975e-ec75c1def58b",
        "plan": "growth",
        "change": "plan_changed",
        "status": "active",
        "currency": "USD",
        "previous": None,
        "started_at": "2026-11-25T19:03:58.432689Z",
        "effective_at": "2026-11-25T19:03:58.432689Z",
        "plan_version": 1,
        "trial_ends_at": None,
        "current_period_end": "2026-12-25T19:03:58.432689Z",
        "cancel_at_period_end": False,
        "current_period_start": "2026-11-25T19:03:58.432689Z",
    },
}
READ_WRITE = {"GET": "webhooks:read", "POST": "webhooks:write"}


class AttemptCursorPagination(CreatedCursorPagination):
    ordering = ("-attempted_at", "-id")


class WebhookEndpointOutputSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=WebhookEndpoint.Status.choices, read_only=True)
    secret_fingerprint = serializers.SerializerMethodField(
        help_text="A short, non-secret label of the current signing secret."
    )
    previous_secret_expires_at = serializers.SerializerMethodField(
        help_text="While a rotated-out secret still signs beside the new one: until when."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "environment",
            "status",
            "disabled_reason",
            "secret_fingerprint",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]

    def get_secret_fingerprint(self, obj) -> str:
        return endpoints.secret_fingerprint(obj)

    def get_previous_secret_expires_at(self, obj) -> str | None:
        expires_at = endpoints.previous_secret_expires_at(obj)
        return serializers.DateTimeField().to_representation(expires_at) if expires_at else None


class WebhookEndpointWithSecretSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.SerializerMethodField(
        help_text="The signing secret (`whsec_...`). Shown in this response only."
    )

    class Meta(WebhookEndpointOutputSerializer.Meta):
        fields = ["secret", *WebhookEndpointOutputSerializer.Meta.fields]

    def get_secret(self, obj) -> str:
        return self.context["secret"]


# A response holding a signing secret must not be kept by any cache on the way.
NO_STORE = {"Cache-Control": "no-store"}


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> dict:
    return WebhookEndpointWithSecretSerializer(endpoint, context={"secret": secret}).data


class WebhookEventOutputSerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(
        source="id", read_only=True, help_text="The `webhook-id` header of every delivery."
    )
    data = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = ["id", "webhook_id", "type", "version", "environment", "created_at", "data"]

    def get_data(self, obj) -> dict:
        return (obj.payload or {}).get("data", {})


class DeliveryAttemptOutputSerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="event_id", read_only=True)
    event_type = serializers.CharField(source="delivery.event.type", read_only=True)
    delivery_id = serializers.UUIDField(read_only=True)
    succeeded = serializers.SerializerMethodField()

    class Meta:
        model = DeliveryAttempt
        fields = [
            "id",
            "event_id",
            "webhook_id",
            "event_type",
            "delivery_id",
            "attempted_at",
            "status_code",
            "succeeded",
            "duration_ms",
            "error",
            "trigger",
            "request_headers",
            "response_body",
        ]

    def get_succeeded(self, obj) -> bool:
        return obj.status_code is not None and 200 <= obj.status_code < 300


class _NoBody(serializers.Serializer):
    """No fields; still refuses a malformed, non-JSON or non-object body."""


# --- Endpoints --------------------------------------------------------------------------
class WebhookEndpointListApi(OrgApiView):
    required_scopes = READ_WRITE

    class FilterSerializer(serializers.Serializer):
        environment = serializers.ChoiceField(
            choices=WebhookEndpoint.Environment.choices, required=False
        )
        status = serializers.ChoiceField(choices=WebhookEndpoint.Status.choices, required=False)

    @extend_schema_serializer(component_name="WebhookEndpointCreateInput")
    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=endpoints.MAX_URL_LENGTH)
        environment = serializers.ChoiceField(choices=WebhookEndpoint.Environment.choices)
        event_types = serializers.ListField(
            child=serializers.CharField(max_length=100),
            required=False,
            max_length=endpoints.MAX_EVENT_TYPES,
            help_text="Event types to receive; empty or left out: every type.",
        )
        description = serializers.CharField(
            max_length=endpoints.MAX_DESCRIPTION_LENGTH, required=False, allow_blank=True
        )

    @extend_schema(
        operation_id="webhook_endpoints_list",
        parameters=[FilterSerializer, *PAGE_PARAMS],
        responses={
            200: paginated(WebhookEndpointOutputSerializer, "PaginatedWebhookEndpointList"),
            **problems(400, 401, 403),
        },
        examples=[
            OpenApiExample(
                "A page of endpoints",
                response_only=True,
                value={"next": None, "previous": None, "results": [ENDPOINT_EXAMPLE]},
            )
        ],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        found = selectors.endpoint_list(organization=self.organization, **filters.validated_data)
        return paginate(self, found, WebhookEndpointOutputSerializer)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=InputSerializer,
        responses={201: WebhookEndpointWithSecretSerializer, **problems(400, 401, 403, 422)},
        examples=[
            OpenApiExample(
                "Invoices and new keys to the billing system",
                request_only=True,
                value={
                    "url": "https://hooks.example.com/tollgate",
                    "environment": "live",
                    "event_types": ["key.created", "invoice.finalized"],
                    "description": "Billing sync",
                },
            ),
            OpenApiExample(
                "The endpoint with its signing secret (shown once)",
                response_only=True,
                status_codes=["201"],
                value={
                    "secret": "whsec_HFQT+nyJtCwZggQOwSSRZtwNH8p2ktpFxLmVa44qvZQ=",
                    **ENDPOINT_EXAMPLE,
                },
            ),
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = endpoints.webhook_endpoint_create(
            actor=self.actor, organization=self.organization, **data.validated_data
        )
        return Response(
            _with_secret(endpoint, secret),
            status=status.HTTP_201_CREATED,
            headers=NO_STORE,
        )


class WebhookEndpointDetailApi(OrgApiView):
    required_scopes = {
        "GET": "webhooks:read",
        "PATCH": "webhooks:write",
        "DELETE": "webhooks:write",
    }

    @extend_schema_serializer(component_name="WebhookEndpointUpdateInput")
    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=endpoints.MAX_URL_LENGTH, required=False)
        environment = serializers.ChoiceField(
            choices=WebhookEndpoint.Environment.choices, required=False
        )
        event_types = serializers.ListField(
            child=serializers.CharField(max_length=100),
            required=False,
            max_length=endpoints.MAX_EVENT_TYPES,
        )
        description = serializers.CharField(
            max_length=endpoints.MAX_DESCRIPTION_LENGTH, required=False, allow_blank=True
        )

    def _endpoint(self, endpoint_id) -> WebhookEndpoint:
        return selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)

    @extend_schema(
        operation_id="webhook_endpoints_retrieve", responses=WebhookEndpointOutputSerializer
    )
    def get(self, request, endpoint_id):
        return Response(WebhookEndpointOutputSerializer(self._endpoint(endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=InputSerializer,
        responses=WebhookEndpointOutputSerializer,
    )
    def patch(self, request, endpoint_id):
        endpoint = self._endpoint(endpoint_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoints.webhook_endpoint_update(
            actor=self.actor, endpoint=endpoint, **data.validated_data
        )
        return Response(WebhookEndpointOutputSerializer(endpoint).data)

    @extend_schema(operation_id="webhook_endpoints_delete", responses={204: None})
    def delete(self, request, endpoint_id):
        endpoint = self._endpoint(endpoint_id)
        endpoints.webhook_endpoint_delete(actor=self.actor, endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointDisableApi(OrgApiView):
    required_scopes = {"POST": "webhooks:write"}

    @extend_schema_serializer(component_name="WebhookEndpointDisableInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            max_length=endpoints.MAX_DISABLED_REASON_LENGTH, required=False, allow_blank=True
        )

    @extend_schema(
        operation_id="webhook_endpoints_disable",
        request=InputSerializer,
        responses=WebhookEndpointOutputSerializer,
    )
    def post(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoints.webhook_endpoint_disable(
            actor=self.actor, endpoint=endpoint, reason=data.validated_data.get("reason")
        )
        return Response(WebhookEndpointOutputSerializer(endpoint).data)


class WebhookEndpointEnableApi(OrgApiView):
    required_scopes = {"POST": "webhooks:write"}

    @extend_schema(
        operation_id="webhook_endpoints_enable",
        request=None,
        responses=WebhookEndpointOutputSerializer,
    )
    def post(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)
        _NoBody(data=request.data).is_valid(raise_exception=True)
        endpoint = endpoints.webhook_endpoint_enable(actor=self.actor, endpoint=endpoint)
        return Response(WebhookEndpointOutputSerializer(endpoint).data)


class WebhookEndpointRotateSecretApi(OrgApiView):
    required_scopes = {"POST": "webhooks:write"}

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        request=None,
        responses=WebhookEndpointWithSecretSerializer,
    )
    def post(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)
        _NoBody(data=request.data).is_valid(raise_exception=True)
        endpoint, secret = endpoints.webhook_endpoint_rotate_secret(
            actor=self.actor, endpoint=endpoint
        )
        return Response(_with_secret(endpoint, secret), headers=NO_STORE)


DELIVERY_QUEUED = inline_serializer(
    "WebhookDeliveryQueued",
    {
        "event_id": serializers.CharField(),
        "webhook_id": serializers.CharField(),
        "deliveries": serializers.ListField(
            child=inline_serializer(
                "WebhookDeliveryQueuedItem",
                {"id": serializers.UUIDField(), "endpoint": serializers.UUIDField()},
            )
        ),
    },
)


def _queued(event_id: str, deliveries) -> dict:
    return {
        "event_id": event_id,
        "webhook_id": event_id,
        "deliveries": [
            {"id": str(delivery.pk), "endpoint": str(delivery.endpoint_id)}
            for delivery in deliveries
        ],
    }


class WebhookEndpointTestApi(OrgApiView):
    required_scopes = {"POST": "webhooks:write"}

    @extend_schema(
        operation_id="webhook_endpoints_test", request=None, responses={202: DELIVERY_QUEUED}
    )
    def post(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)
        _NoBody(data=request.data).is_valid(raise_exception=True)
        delivery = endpoints.webhook_endpoint_send_test(actor=self.actor, endpoint=endpoint)
        return Response(_queued(delivery.event_id, [delivery]), status=status.HTTP_202_ACCEPTED)


class WebhookEndpointAttemptListApi(OrgApiView):
    required_scopes = {"GET": "webhooks:read"}

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=selectors.ATTEMPT_STATUS_FILTERS,
            required=False,
            help_text="succeeded (2xx), failed (anything else), a class (4xx) or no_response.",
        )
        event_type = serializers.CharField(max_length=100, required=False)
        since = AwareDateTimeField(required=False)

    @extend_schema(
        operation_id="webhook_endpoints_attempts",
        parameters=[FilterSerializer, *PAGE_PARAMS],
        responses={
            200: paginated(DeliveryAttemptOutputSerializer, "PaginatedDeliveryAttemptList"),
            **problems(400, 401, 403, 404),
        },
    )
    def get(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        attempts = selectors.attempt_list(endpoint=endpoint, **filters.validated_data)
        paginator = AttemptCursorPagination()
        page = paginator.paginate_queryset(attempts, request, view=self)
        return paginator.get_paginated_response(
            DeliveryAttemptOutputSerializer(page, many=True).data
        )


class WebhookEndpointReplayApi(OrgApiView):
    required_scopes = {"POST": "webhooks:write"}

    @extend_schema_serializer(component_name="WebhookEndpointReplayInput")
    class InputSerializer(serializers.Serializer):
        since = AwareDateTimeField(help_text="Replay every event since then (at most 14 days).")

    @extend_schema(
        operation_id="webhook_endpoints_replay",
        request=InputSerializer,
        responses={
            202: inline_serializer(
                "WebhookReplayQueued",
                {
                    "endpoint": serializers.UUIDField(),
                    "since": serializers.DateTimeField(),
                    "count": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request, endpoint_id):
        endpoint = selectors.endpoint_get(organization=self.organization, endpoint_id=endpoint_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        since = data.validated_data["since"]
        count = endpoints.webhook_endpoint_replay(actor=self.actor, endpoint=endpoint, since=since)
        return Response(
            {
                "endpoint": str(endpoint.pk),
                "since": serializers.DateTimeField().to_representation(since),
                "count": count,
            },
            status=status.HTTP_202_ACCEPTED,
        )


# --- Events -----------------------------------------------------------------------------
class EventListApi(OrgApiView):
    required_scopes = {"GET": "webhooks:read"}

    class FilterSerializer(serializers.Serializer):
        type = serializers.CharField(max_length=100, required=False)
        environment = serializers.ChoiceField(
            choices=WebhookEndpoint.Environment.choices, required=False
        )
        since = AwareDateTimeField(required=False)

    @extend_schema(
        operation_id="events_list",
        parameters=[FilterSerializer, *PAGE_PARAMS],
        responses={
            200: paginated(WebhookEventOutputSerializer, "PaginatedWebhookEventList"),
            **problems(400, 401, 403),
        },
        examples=[
            OpenApiExample(
                "A page of events",
                response_only=True,
                value={
                    "next": "https://tollgate.example.com/api/v1/events?cursor=cD0yMDI2LTExLTI1KzE5JTNBMDMlM0E1OC40NTI1MDAlMkIwMCUzQTAw&limit=1",
                    "previous": None,
                    "results": [EVENT_EXAMPLE],
                },
            )
        ],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = selectors.event_list(organization=self.organization, **filters.validated_data)
        return paginate(self, events, WebhookEventOutputSerializer)


class EventRedeliverApi(OrgApiView):
    required_scopes = {"POST": "webhooks:write"}

    @extend_schema_serializer(component_name="EventRedeliverInput")
    class InputSerializer(serializers.Serializer):
        endpoint = serializers.CharField(
            max_length=64,
            required=False,
            help_text="Only this endpoint; left out: every enabled endpoint that wants it.",
        )

    @extend_schema(
        operation_id="events_redeliver",
        request=InputSerializer,
        responses={202: DELIVERY_QUEUED},
    )
    def post(self, request, event_id):
        event = selectors.event_get(organization=self.organization, event_id=event_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = None
        if "endpoint" in data.validated_data:
            endpoint = selectors.endpoint_get(
                organization=self.organization, endpoint_id=data.validated_data["endpoint"]
            )
        deliveries = endpoints.event_redeliver(actor=self.actor, event=event, endpoint=endpoint)
        return Response(_queued(event.id, deliveries), status=status.HTTP_202_ACCEPTED)
