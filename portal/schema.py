"""OpenAPI pieces shared by every API module: bearer auth, problem+json errors, cursor pages."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An org token (tg_org_...) or an operator token (tg_op_...).",
        }


# --- Shared shapes of the OpenAPI document ---------------------------------------------------
# Views are plain APIViews, so drf-spectacular cannot see their pagination or error format;
# these helpers describe both once, and every API module uses them in its extend_schema.

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemFieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The request field, dotted for nested ones.")
    code = serializers.CharField()
    detail = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as common/problems.py writes them for every error."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="Stable and meant for programs.")
    detail = serializers.CharField(help_text="For people; may change.")
    request_id = serializers.CharField(help_text="Also in the X-Request-Id header.")
    errors = ProblemFieldErrorSerializer(many=True, required=False)


PROBLEM_EXAMPLES = {
    400: OpenApiExample(
        "Validation error",
        status_codes=["400"],
        media_type=PROBLEM_MEDIA_TYPE,
        response_only=True,
        value={
            "type": "https://tollgate.dev/problems/validation_error",
            "title": "The request is not valid",
            "status": 400,
            "code": "validation_error",
            "detail": 'environment: "prod" is not a valid choice.',
            "request_id": "req_240b1e55621b4331a1410f1d2ca389be",
            "errors": [
                {
                    "field": "environment",
                    "code": "invalid_choice",
                    "detail": '"prod" is not a valid choice.',
                }
            ],
        },
    ),
    401: OpenApiExample(
        "Invalid token",
        status_codes=["401"],
        media_type=PROBLEM_MEDIA_TYPE,
        response_only=True,
        value={
            "type": "https://tollgate.dev/problems/invalid_token",
            "title": "Invalid token",
            "status": 401,
            "code": "invalid_token",
            "detail": "The token is unknown, revoked or expired.",
            "request_id": "req_8c1d6f0a2b9e4c7d9a3f5e1b7c2d4a60",
        },
    ),
    403: OpenApiExample(
        "Insufficient scope",
        status_codes=["403"],
        media_type=PROBLEM_MEDIA_TYPE,
        response_only=True,
        value={
            "type": "https://tollgate.dev/problems/insufficient_scope",
            "title": "Permission denied",
            "status": 403,
            "code": "insufficient_scope",
            "detail": "The token lacks the 'keys:write' scope.",
            "request_id": "req_0f4b2e6c8a1d4f3b9e7c5a2d1b8e6f40",
        },
    ),
    404: OpenApiExample(
        "Not found",
        status_codes=["404"],
        media_type=PROBLEM_MEDIA_TYPE,
        response_only=True,
        value={
            "type": "https://tollgate.dev/problems/not_found",
            "title": "Not found",
            "status": 404,
            "code": "not_found",
            "detail": "No such project.",
            "request_id": "req_3dca9a6b9cff44deb0cb366f472fcdd4",
        },
    ),
    422: OpenApiExample(
        "Idempotency-Key reused",
        status_codes=["422"],
        media_type=PROBLEM_MEDIA_TYPE,
        response_only=True,
        value={
            "type": "https://tollgate.dev/problems/idempotency_key_reused",
            "title": "Idempotency-Key reused",
            "status": 422,
            "code": "idempotency_key_reused",
            "detail": "This Idempotency-Key was used with a different request body or path.",
            "request_id": "req_6a9e3c1f7b2d4e8a0c5f9b1d3e7a2c46",
        },
    ),
}


def problems(*statuses: int) -> dict:
    """`responses` entries for the error statuses an operation documents (problem+json)."""
    return {
        (status, PROBLEM_MEDIA_TYPE): OpenApiResponse(
            ProblemSerializer,
            description="RFC 9457 problem details with a stable `code`.",
            examples=[PROBLEM_EXAMPLES[status]] if status in PROBLEM_EXAMPLES else [],
        )
        for status in statuses
    }


SerializerLike = type[serializers.Serializer] | serializers.Serializer


def _many(serializer: SerializerLike) -> serializers.Serializer:
    """A list of `serializer` (a class, or an instance such as an inline_serializer)."""
    serializer_class = serializer if isinstance(serializer, type) else type(serializer)
    return serializer_class(many=True)


def paginated(serializer: SerializerLike, name: str) -> serializers.Serializer:
    """A cursor page as common.pagination answers it: follow `next` until it is null."""
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(
                allow_null=True, help_text="The next page (same filters), or null on the last."
            ),
            "previous": serializers.URLField(allow_null=True),
            "results": _many(serializer),
        },
    )


def results_list(serializer: SerializerLike, name: str) -> serializers.Serializer:
    """`{"results": [...]}`: short, unpaginated catalogs (meters, plans, API versions)."""
    return inline_serializer(name, {"results": _many(serializer)})
