"""POST /api/v1/verify: the gate over HTTP, for the provider's gateway (GATE-1)."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.utils.http import http_date
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from common.errors import InvalidInput
from common.redis import new_dedicated_redis
from keys.gate import Decision, EndpointCatalog, Gate, VerifyInput
from keys.keycache import KeyCache
from keys.quota import QuotaCounter
from keys.ratelimit import RateLimiter, policy_header
from portal.api_base import OperatorApiView
from portal.schema import problems

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE")
MAX_COST = 1_000_000


@lru_cache(maxsize=1)
def process_gate() -> Gate:
    """One gate per process: its key cache and catalog are what make verify fast."""
    client = new_dedicated_redis()
    return Gate(
        keys=KeyCache(client),
        limiter=RateLimiter(client),
        catalog=EndpointCatalog(),
        quotas=QuotaCounter(client),
        redis_client=client,
    )


def _text(body: dict, name: str, *, required: bool, max_length: int) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidInput(f"{name} must be a string of 1 to {max_length} characters.", field=name)
    return value


def parse_verify_body(body, request_id: str | None = None) -> VerifyInput:
    if not isinstance(body, dict):
        raise InvalidInput("Send a JSON object.")
    method = _text(body, "method", required=True, max_length=10).upper()
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}.", field="method")
    path = _text(body, "path", required=True, max_length=2048)
    if not path.startswith("/"):
        raise InvalidInput("path must start with '/'.", field="path")
    ip = _text(body, "ip", required=False, max_length=64)
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidInput("ip must be an IPv4 or IPv6 address.", field="ip") from None
    cost = body.get("cost", 1)
    if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= MAX_COST:
        raise InvalidInput(f"cost must be a whole number from 1 to {MAX_COST}.", field="cost")
    key = body.get("key")
    if not isinstance(key, str):
        raise InvalidInput("key must be a string.", field="key")
    return VerifyInput(
        key=key[:200],
        method=method,
        path=path,
        ip=ip,
        cost=cost,
        product=_text(body, "product", required=False, max_length=64),
        version=_text(body, "version", required=False, max_length=32),
        request_id=request_id,
    )


def decision_body(decision: Decision, request_id: str) -> dict:
    key, endpoint = decision.key, decision.endpoint
    entitlements = decision.entitlements or {}
    binding = decision.ratelimit.binding if decision.ratelimit else None
    quota_state = None
    if decision.quota is not None and decision.quota.states:
        quota_state = decision.quota.denied_by or min(
            decision.quota.states, key=lambda state: state.remaining
        )
    body = {
        "allowed": decision.allowed,
        "code": decision.code,
        "key_id": key.id if key else None,
        "project_id": key.project_id if key else None,
        "customer": key.organization_slug if key else None,
        "environment": key.environment if key else None,
        "plan": entitlements.get("plan"),
        "scopes": list(key.scopes) if key else [],
        "endpoint": None
        if endpoint is None
        else {
            "operation_id": endpoint.operation_id,
            "group": endpoint.group,
            "method": endpoint.method,
            "path": endpoint.path_template,
        },
        "ratelimit": None
        if binding is None
        else {
            "limit": binding.limit.limit,
            "remaining": binding.remaining,
            "reset": round(binding.reset_seconds, 3),
        },
        "quota": None
        if quota_state is None
        else {
            "meter": quota_state.quota.meter,
            "limit": quota_state.quota.limit,
            "remaining": quota_state.remaining,
            "behaviour": quota_state.quota.behaviour,
        },
        "request_id": request_id,
    }
    if decision.block is not None:
        body["block"] = {
            "reason_code": decision.block.reason_code,
            "expires_at": decision.block.expires_at.isoformat()
            if decision.block.expires_at
            else None,
        }
    if endpoint is not None and endpoint.deprecated:
        body["deprecation"] = True
    if endpoint is not None and endpoint.sunset_at is not None:
        body["sunset"] = endpoint.sunset_at.isoformat()
    return body


def after_decision(decision: Decision) -> None:
    """In the embedded default there is no beat to drain usage: do it now."""
    if decision.allowed and settings.GATE_DRAIN_INLINE:
        from keys.tasks import drain_gate_usage

        drain_gate_usage()


def decision_headers(decision: Decision) -> dict[str, str]:
    """IETF RateLimit headers, Retry-After when rate limited, Deprecation and Sunset."""
    headers = {}
    if decision.limits:
        headers["RateLimit-Policy"] = policy_header(decision.limits)
    binding = decision.ratelimit.binding if decision.ratelimit else None
    if binding is not None:
        headers["RateLimit"] = (
            f"limit={binding.limit.limit}, remaining={binding.remaining}, "
            f"reset={max(int(binding.reset_seconds + 0.999), 0)}"
        )
    if decision.code == "rate_limited" and binding is not None:
        headers["Retry-After"] = str(max(int(binding.retry_after_seconds + 0.999), 1))
    endpoint = decision.endpoint
    if endpoint is not None and endpoint.sunset_at is not None:
        headers["Sunset"] = http_date(endpoint.sunset_at.timestamp())
    if endpoint is not None and endpoint.deprecated:
        headers["Deprecation"] = "true"
    return headers


# The schema of what parse_verify_body accepts and decision_body answers (documentation
# only: the view parses by hand, so the fast WSGI path and this view share one parser).
VERIFY_REQUEST = inline_serializer(
    "VerifyInput",
    {
        "key": serializers.CharField(help_text="The API key the caller presented."),
        "method": serializers.ChoiceField(choices=METHODS),
        "path": serializers.CharField(max_length=2048, help_text="Starts with '/'."),
        "ip": serializers.IPAddressField(required=False, help_text="The caller's address."),
        "cost": serializers.IntegerField(required=False, min_value=1, max_value=MAX_COST),
        "product": serializers.CharField(required=False, max_length=64),
        "version": serializers.CharField(required=False, max_length=32),
    },
)
VERIFY_DECISION = inline_serializer(
    "VerifyDecision",
    {
        "allowed": serializers.BooleanField(),
        "code": serializers.CharField(help_text="`ok`, or why the call is denied."),
        "key_id": serializers.UUIDField(allow_null=True),
        "project_id": serializers.UUIDField(allow_null=True),
        "customer": serializers.CharField(allow_null=True, help_text="The org's slug."),
        "environment": serializers.CharField(allow_null=True),
        "plan": serializers.CharField(allow_null=True),
        "scopes": serializers.ListField(child=serializers.CharField()),
        "endpoint": inline_serializer(
            "VerifyEndpoint",
            {
                "operation_id": serializers.CharField(),
                "group": serializers.CharField(),
                "method": serializers.CharField(),
                "path": serializers.CharField(),
            },
            allow_null=True,
        ),
        "ratelimit": inline_serializer(
            "VerifyRateLimit",
            {
                "limit": serializers.IntegerField(),
                "remaining": serializers.IntegerField(),
                "reset": serializers.FloatField(help_text="Seconds until the bucket is full."),
            },
            allow_null=True,
        ),
        "quota": inline_serializer(
            "VerifyQuota",
            {
                "meter": serializers.CharField(),
                "limit": serializers.IntegerField(),
                "remaining": serializers.IntegerField(),
                "behaviour": serializers.ChoiceField(choices=["hard", "soft"]),
            },
            allow_null=True,
        ),
        "request_id": serializers.CharField(),
        "block": inline_serializer(
            "VerifyBlock",
            {
                "reason_code": serializers.CharField(),
                "expires_at": serializers.DateTimeField(allow_null=True),
            },
            required=False,
        ),
        "deprecation": serializers.BooleanField(required=False),
        "sunset": serializers.DateTimeField(required=False),
    },
)
_ALLOWED_DECISION = {
    "allowed": True,
    "code": "ok",
    "key_id": "a5f8652f-9089-41a8-a650-36b65a557bd8",
    "project_id": "647350d3-ba70-4b5a-9035-4fbbb1b4f8e0",
    "customer": "acme",
    "environment": "live",
    "plan": "growth",
    "scopes": ["read"],
    "endpoint": {
        "operation_id": "getDocument",
        "group": "read",
        "method": "GET",
        "path": "/documents/{id}",
    },
    "ratelimit": {"limit": 50, "remaining": 49, "reset": 0.02},
    "quota": {"meter": "requests", "limit": 100000, "remaining": 99958, "behaviour": "hard"},
    "request_id": "req_ebd5cbc20a264b9b9e7485d5fcb1b65f",
}
VERIFY_EXAMPLES = [
    OpenApiExample(
        "Check one call",
        request_only=True,
        value={
            "key": "tg_live_WxHEgNyd1uu0K5g9MJIr0OnGfdne2ETb1El1NR",
            "method": "GET",
            "path": "/v1/documents/42",
            "ip": "203.0.113.7",
        },
    ),
    OpenApiExample("Allowed", response_only=True, value=_ALLOWED_DECISION),
    OpenApiExample(
        "Denied: rate limited (headers carry Retry-After)",
        response_only=True,
        value={
            **_ALLOWED_DECISION,
            "allowed": False,
            "code": "rate_limited",
            "ratelimit": {"limit": 50, "remaining": 0, "reset": 1.0},
        },
    ),
    OpenApiExample(
        "Denied: malformed key",
        response_only=True,
        value={
            "allowed": False,
            "code": "key_malformed",
            "key_id": None,
            "project_id": None,
            "customer": None,
            "environment": None,
            "plan": None,
            "scopes": [],
            "endpoint": None,
            "ratelimit": None,
            "quota": None,
            "request_id": "req_fa2aae2f634149558c64ef6e0033fb39",
        },
    ),
]


class VerifyApi(OperatorApiView):
    """Allow or deny one call of the provider's API; always 200 with the decision."""

    required_scopes = {"POST": "gate:verify"}

    @extend_schema(
        operation_id="verify",
        request=VERIFY_REQUEST,
        responses={200: VERIFY_DECISION, **problems(400, 401, 403)},
        examples=VERIFY_EXAMPLES,
    )
    def post(self, request):
        request_id = request.request_id
        decision = process_gate().decide(parse_verify_body(request.data, request_id))
        after_decision(decision)
        response = Response(decision_body(decision, request_id))
        for name, value in decision_headers(decision).items():
            response[name] = value
        return response
