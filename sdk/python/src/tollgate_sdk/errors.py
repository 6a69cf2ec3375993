"""Typed exceptions for Tollgate's RFC 9457 problem+json errors, one class per status family.

Callers branch on the stable `code` (for programs) or catch a class (for a status family);
`detail` is for people and may change, and `request_id` is what support asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TollgateError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(TollgateError):
    """No HTTP answer at all (DNS, refused connection, timeout) after the allowed retries."""


class APIError(TollgateError):
    """Tollgate answered with an error status; the fields come from its problem+json body.

    `code` is stable and meant for `if` statements; the rest is context for logs.
    """

    def __init__(
        self,
        *,
        status: int,
        code: str,
        detail: str,
        request_id: str | None,
        title: str | None = None,
        type: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.title = title
        self.type = type
        self.errors: list[dict[str, Any]] = errors or []
        self.body: Mapping[str, Any] = body or {}
        self.headers: Mapping[str, str] = headers or {}
        super().__init__(f"{status} {code}: {detail} (request id {request_id})")


class BadRequestError(APIError):
    """400: the request was refused as invalid; `errors` lists the fields when there are any."""


class AuthenticationError(APIError):
    """401: no token, or an unknown, revoked or expired one."""


class PermissionDeniedError(APIError):
    """403: the token lacks a scope, or is the wrong kind (org vs operator)."""


class NotFoundError(APIError):
    """404: missing, or another organization's (Tollgate does not tell them apart)."""


class ConflictError(APIError):
    """409: e.g. a name taken, or the same Idempotency-Key still being processed."""


class UnprocessableError(APIError):
    """422: e.g. an Idempotency-Key reused with a different body."""


class PayloadTooLargeError(APIError):
    """413: the body or batch is larger than the API accepts."""


class RateLimitError(APIError):
    """429 after the SDK's own retries; `retry_after` is the server's hint in seconds."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(APIError):
    """5xx after the SDK's own retries (where retrying was safe)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
}


def error_class_for(status: int) -> type[APIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIError


def error_from_response(
    status: int, body: Any, headers: Mapping[str, str], request_id_header: str | None
) -> APIError:
    """Builds the typed exception; tolerates a non-problem body (a proxy's HTML page)."""
    problem: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    code = problem.get("code")
    detail = problem.get("detail")
    errors = problem.get("errors")
    return error_class_for(status)(
        status=status,
        code=code if isinstance(code, str) else f"http_{status}",
        detail=detail if isinstance(detail, str) else (str(body)[:500] if body else ""),
        request_id=problem.get("request_id") or request_id_header,
        title=problem.get("title"),
        type=problem.get("type"),
        errors=errors if isinstance(errors, list) else None,
        body=problem,
        headers=headers,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
