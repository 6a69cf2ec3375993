"""Request-level conventions: request ids, trailing slashes, problem+json for the API, and
the Content-Security-Policy header."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from common.problems import problem_response
from common.request_id import (
    accept_or_create,
    reset_current_request_id,
    set_current_request_id,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


class RequestIdMiddleware:
    """Gives every request an id, exposes it to logs, and returns it in X-Request-Id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_or_create(request.headers.get("X-Request-Id"))
        request.request_id = request_id
        token = set_current_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_current_request_id(token)
        response["X-Request-Id"] = request_id
        return response


class ApiTrailingSlashMiddleware:
    """API routes are declared without a trailing slash; this lets `/keys/` reach `/keys`.

    Rewriting path_info (instead of redirecting like APPEND_SLASH) keeps POST bodies and
    saves clients a round trip, and the OpenAPI schema lists each path once.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and len(path) > len(API_PREFIX) and path.endswith("/"):
            request.path_info = path.rstrip("/")
        return self.get_response(request)


class ApiProblemMiddleware:
    """Outside DRF views (unknown URLs, crashes), API callers still get problem+json."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            is_api_request(request)
            and response.status_code == 404
            and not response.get("Content-Type", "").startswith("application/")
        ):
            return problem_response(
                status=404, code="not_found", title="Not found", detail="No such API resource."
            )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_request(request):
            return None
        logger.exception("Unhandled error in API request")
        return problem_response(
            status=500,
            code="internal_error",
            title="Internal error",
            detail="An unexpected error occurred; quote the request id when reporting it.",
        )


class ContentSecurityPolicyMiddleware:
    """Every response gets `settings.CONTENT_SECURITY_POLICY` unless its view set a stricter
    one (uploaded images: `default-src 'none'; sandbox`). Pages load only Tollgate's own
    scripts, so an injected `<script>` or inline handler does not run (docs/operations.md)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
