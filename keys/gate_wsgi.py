"""POST /api/v1/verify without Django's middleware and DRF: the gate's hot path.

Verify runs on every call of the provider's API, so it is answered by this small WSGI
layer in front of Django, which hands every other request to Django untouched. It keeps
the API's contract: bearer operator tokens with `gate:verify`, problem+json errors with the
same codes, X-Request-Id, the same body and headers as keys.gate_api.VerifyApi (a test
compares the two). Requests with an Idempotency-Key go through Django, which stores them.
"""

import json
import logging

from django.db import close_old_connections

from common.errors import TollgateError
from common.problems import PROBLEM_CONTENT_TYPE, problem_body
from common.request_id import accept_or_create, reset_current_request_id
from common.request_id import set_current_request_id as set_request_id
from keys.gate_api import (
    after_decision,
    decision_body,
    decision_headers,
    parse_verify_body,
    process_gate,
)
from portal.authentication import TokenRefused, authenticate_bearer
from portal.models import ApiToken
from portal.scopes import scope_satisfied

logger = logging.getLogger(__name__)

VERIFY_PATH = "/api/v1/verify"
MAX_BODY = 64 * 1024
STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
}
TITLES = {
    "authentication_required": "Authentication required",
    "invalid_token": "Invalid token",
    "wrong_token_kind": "Permission denied",
    "insufficient_scope": "Permission denied",
    "unsupported_media_type": "Unsupported media type",
    "malformed_request": "Malformed request body",
    "payload_too_large": "Request too large",
    "internal_error": "Internal error",
}


class _Problem(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra):
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


class VerifyFastPath:
    def __init__(self, django_application):
        self.django_application = django_application

    def __call__(self, environ, start_response):
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO", "").rstrip("/") != VERIFY_PATH
            or "HTTP_IDEMPOTENCY_KEY" in environ
        ):
            return self.django_application(environ, start_response)
        request_id = accept_or_create(environ.get("HTTP_X_REQUEST_ID"))
        context = set_request_id(request_id)
        close_old_connections()  # as Django does at a request's start
        try:
            status, body, headers = self._verify(environ, request_id)
        finally:
            close_old_connections()
            reset_current_request_id(context)
        payload = json.dumps(body).encode()
        content_type = "application/json" if status == 200 else PROBLEM_CONTENT_TYPE
        start_response(
            STATUS_TEXT[status],
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(payload))),
                ("X-Request-Id", request_id),
                *headers.items(),
            ],
        )
        return [payload]

    def _verify(self, environ, request_id: str):
        try:
            self._authenticate(environ)
            decision = process_gate().decide(parse_verify_body(self._json(environ), request_id))
            after_decision(decision)
            return 200, decision_body(decision, request_id), decision_headers(decision)
        except _Problem as problem:
            headers = {}
            if problem.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="api"'
            body = problem_body(
                status=problem.status,
                code=problem.code,
                title=TITLES.get(problem.code, "Request failed"),
                detail=problem.detail,
                **problem.extra,
            )
            return problem.status, body, headers
        except TollgateError as error:
            body = problem_body(
                status=error.status,
                code=error.code,
                title=error.title,
                detail=error.detail,
                **error.extra,
            )
            return error.status, body, {}
        except Exception:
            logger.exception("Unhandled error in verify")
            body = problem_body(
                status=500,
                code="internal_error",
                title="Internal error",
                detail="An unexpected error occurred; quote the request id.",
            )
            return 500, body, {}

    def _authenticate(self, environ) -> ApiToken:
        try:
            token = authenticate_bearer(environ.get("HTTP_AUTHORIZATION", ""))
        except TokenRefused as refused:
            raise _Problem(401, refused.code, refused.detail) from refused
        if token.kind != ApiToken.Kind.OPERATOR:
            raise _Problem(403, "wrong_token_kind", "This endpoint needs an operator token.")
        if not scope_satisfied(token.scopes, "gate:verify"):
            raise _Problem(403, "insufficient_scope", "The token lacks the 'gate:verify' scope.")
        return token

    def _json(self, environ):
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise _Problem(
                415,
                "unsupported_media_type",
                f'Unsupported media type "{content_type}" in request.',
            )
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            raise _Problem(413, "payload_too_large", "The request body is too large.")
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as error:
            raise _Problem(400, "malformed_request", f"JSON parse error - {error}") from error
