"""The event catalog over the API: `GET /api/v1/event-types` and the AsyncAPI document at
`GET /api/v1/asyncapi.json`. Both are public, like the OpenAPI schema: the catalog
describes what Tollgate sends, not anyone's data, and the AsyncAPI document publishes it
anyway, so a token would protect nothing."""

from django.utils.cache import patch_cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webhooks.catalog import asyncapi_document, event_type_json, event_types

CACHE_SECONDS = 300  # the catalog changes only with a deployment
# Taken from the catalog itself, so the documented example can never drift from it.
EVENT_TYPES_EXAMPLE = {
    "results": [event_type_json(item) for item in event_types() if item.name == "key.created"]
}


class _PublicCatalogApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 200:
            patch_cache_control(response, public=True, max_age=CACHE_SECONDS)
        return response


class EventTypeListApi(_PublicCatalogApi):
    """Every event type Tollgate emits, with its version, description, the JSON Schema
    (2020-12) of its `data` and examples of `data`."""

    @extend_schema(
        operation_id="event_types_list",
        tags=["event-types"],
        auth=[],
        responses={
            200: inline_serializer(
                "EventTypeList",
                {
                    "results": inline_serializer(
                        "EventType",
                        {
                            "name": serializers.CharField(),
                            "version": serializers.IntegerField(),
                            "description": serializers.CharField(),
                            "schema": serializers.JSONField(),
                            "examples": serializers.ListField(child=serializers.JSONField()),
                        },
                        many=True,
                    )
                },
            )
        },
        examples=[
            OpenApiExample(
                "One event type (the list has them all)",
                response_only=True,
                value=EVENT_TYPES_EXAMPLE,
            )
        ],
    )
    def get(self, request):
        return Response({"results": [event_type_json(event_type) for event_type in event_types()]})


class AsyncApiDocumentApi(_PublicCatalogApi):
    """The webhooks as an AsyncAPI 3.0 document: a channel per event type whose message
    payload is the whole body sent, with the signature headers."""

    @extend_schema(
        operation_id="asyncapi_document",
        tags=["event-types"],
        auth=[],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        return Response(asyncapi_document())
