"""RFC 9457 problem+json: the one place where errors become HTTP responses."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DataError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from common.errors import TollgateError
from common.request_id import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://tollgate.dev/problems/"

# DRF exception class -> (stable code, title). Order matters: subclasses first.
_DRF_CODES: list[tuple[type[Exception], str, str]] = [
    (drf_exceptions.NotAuthenticated, "authentication_required", "Authentication required"),
    (drf_exceptions.AuthenticationFailed, "invalid_token", "Invalid token"),
    (drf_exceptions.PermissionDenied, "permission_denied", "Permission denied"),
    (drf_exceptions.NotFound, "not_found", "Not found"),
    (drf_exceptions.MethodNotAllowed, "method_not_allowed", "Method not allowed"),
    (drf_exceptions.NotAcceptable, "not_acceptable", "Not acceptable"),
    (drf_exceptions.UnsupportedMediaType, "unsupported_media_type", "Unsupported media type"),
    (drf_exceptions.ParseError, "malformed_request", "Malformed request body"),
    (drf_exceptions.Throttled, "rate_limited", "Too many requests"),
    (drf_exceptions.ValidationError, "validation_error", "The request is not valid"),
]


# DRF's own default detail codes; any other code was set by our views and is kept.
_DRF_DEFAULT_DETAIL_CODES = frozenset(
    {
        "permission_denied",
        "not_found",
        "error",
        "authentication_failed",
        "not_authenticated",
        "invalid",
        "method_not_allowed",
        "not_acceptable",
        "unsupported_media_type",
        "parse_error",
        "throttled",
    }
)


def problem_body(
    *, status: int, code: str, title: str, detail: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "request_id": current_request_id(),
    }
    body.update(extra)
    return body


def problem_response(
    *, status: int, code: str, title: str, detail: str, **extra: Any
) -> JsonResponse:
    """A plain Django response, for middleware and URL-level handlers outside DRF."""
    body = problem_body(status=status, code=code, title=title, detail=detail, **extra)
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def _flatten_validation_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF nests errors by field; clients want one flat list of {field, code, detail}."""
    errors: list[dict[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, int):
                # A ListField reports its items' errors keyed by position (0 included).
                field = f"{prefix}[{key}]"
            else:
                name = key if key != "non_field_errors" else ""
                field = f"{prefix}.{name}" if prefix and name else (name or prefix)
            errors.extend(_flatten_validation_errors(value, field))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if isinstance(value, dict | list):
                errors.extend(_flatten_validation_errors(value, f"{prefix}[{index}]"))
            else:
                errors.extend(_flatten_validation_errors(value, prefix))
    else:
        code = getattr(data, "code", "invalid") or "invalid"
        errors.append({"field": prefix or None, "code": str(code), "detail": str(data)})
    return errors


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every API error leaves as problem+json."""
    if isinstance(exc, RequestDataTooBig):
        set_rollback()
        body = problem_body(
            status=413,
            code="payload_too_large",
            title="Request too large",
            detail="The request body is larger than this endpoint accepts.",
        )
        return Response(body, status=413, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, DataError):
        # Input the database cannot store (a NUL character in text, a number out of a
        # column's range) that no validation caught: the caller's error, not ours. The
        # transaction is rolled back, so nothing was changed.
        set_rollback()
        body = problem_body(
            status=400,
            code="invalid_value",
            title="The request is not valid",
            detail="A value in the request cannot be stored (for example a NUL character "
            "in text, or a number out of range).",
        )
        return Response(body, status=400, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, TollgateError):
        set_rollback()
        body = problem_body(
            status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, **exc.extra
        )
        return Response(body, status=exc.status, content_type=PROBLEM_CONTENT_TYPE)

    if isinstance(exc, drf_exceptions.APIException):
        set_rollback()
        code, title = "error", "Request failed"
        for cls, known_code, known_title in _DRF_CODES:
            if isinstance(exc, cls):
                code, title = known_code, known_title
                break
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, drf_exceptions.ValidationError):
            extra["errors"] = _flatten_validation_errors(exc.detail)
            first = extra["errors"][0] if extra["errors"] else None
            detail = (
                f"{first['field']}: {first['detail']}" if first and first["field"] else None
            ) or (first["detail"] if first else title)
        else:
            detail = str(exc.detail)
            # Keep our own code when a view raised PermissionDenied(code=...), e.g. scopes.
            detail_code = getattr(exc.detail, "code", None)
            if detail_code and detail_code not in _DRF_DEFAULT_DETAIL_CODES:
                code = str(detail_code)
        if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        body = problem_body(status=exc.status_code, code=code, title=title, detail=detail, **extra)
        return Response(
            body, status=exc.status_code, content_type=PROBLEM_CONTENT_TYPE, headers=headers
        )

    return None


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return problem_response(
        status=404, code="not_found", title="Not found", detail="No such API resource."
    )
