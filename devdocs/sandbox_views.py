"""`/sandbox/<product>/<version>/<path>`: the sandbox mock server over HTTP (DOCS-3).

A plain API-style view: any method, no CSRF, no session (the API key is the only
credential, read exactly as the provider-side middleware reads it). It parses the request,
hands it to devdocs.sandbox, and writes the answer; the gate's usage is drained inline in the
embedded mode, and the outcome of an allowed call is recorded for the status page.
"""

import logging
import time

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.http.request import RawPostDataException
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from common.request_id import new_request_id
from devdocs.onboarding import sandbox_success
from devdocs.sandbox import (
    MAX_BODY_BYTES,
    SandboxAnswer,
    SandboxCall,
    parse_prefer,
    problem,
    sandbox_call,
)
from keys.gate_api import after_decision, process_gate
from portal.audit import client_ip

logger = logging.getLogger(__name__)

SANDBOX_HEADER = "X-Tollgate-Sandbox"


def _body(request: HttpRequest) -> bytes | None:
    """The body, or None when it is larger than the sandbox takes (checked on the declared
    length first, so a huge upload is not read at all)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None
    try:
        body = request.body
    except (RequestDataTooBig, RawPostDataException):
        return None
    return None if len(body) > MAX_BODY_BYTES else body


def _response(answer: SandboxAnswer, method: str) -> HttpResponse:
    response = HttpResponse(
        b"" if method == "HEAD" else answer.body,
        status=answer.status,
        content_type=answer.content_type,
    )
    if answer.content_type is None:
        del response["Content-Type"]
    for name, value in answer.headers.items():
        response[name] = value
    response[SANDBOX_HEADER] = "true"
    return response


def _chosen_by_caller(prefer: str) -> bool:
    """Whether the caller picked the answer (`Prefer: code=...` or `example=...`).

    Such an answer says what the caller asked for, not how the sandbox is doing: a free test
    key could otherwise post `Prefer: code=503` in a loop and paint the status page red.
    An unreadable Prefer header is answered 400 by the sandbox itself, like any bad request.
    """
    preference = parse_prefer(prefer)
    return not isinstance(preference, str) and (
        preference.code is not None or preference.example is not None
    )


def _record_outcome(answer: SandboxAnswer, duration_ms: float, *, prefer: str = "") -> None:
    """The status page's measurements (devdocs.health); its failure never fails the call.

    Only the answers the sandbox chose itself are recorded, never one chosen with Prefer.
    """
    endpoint = answer.endpoint
    if endpoint is None or _chosen_by_caller(prefer):
        return
    try:
        from devdocs.health import Outcome, record_outcomes

        record_outcomes(
            [
                Outcome(
                    endpoint_id=str(endpoint.id),
                    environment="test",
                    status=answer.status,
                    duration_ms=duration_ms,
                    at=timezone.now(),
                )
            ]
        )
    except Exception:
        logger.exception("sandbox: could not record the outcome for the status page")


@csrf_exempt
def sandbox(request: HttpRequest, product: str, version: str, rest: str = "") -> HttpResponse:
    started = time.perf_counter()
    method = request.method.upper()
    body = _body(request)
    if body is None:
        answer = problem(
            413,
            "payload_too_large",
            f"The sandbox takes request bodies of up to {MAX_BODY_BYTES} bytes.",
            title="Request too large",
        )
        return _response(answer, method)
    answer = sandbox_call(
        SandboxCall(
            product=product,
            version=version,
            method=method,
            rest="/" + rest,
            headers={name.lower(): value for name, value in request.headers.items()},
            query={name: request.GET.getlist(name) for name in request.GET},
            cookies=dict(request.COOKIES),
            body=body,
            ip=client_ip(request),
            request_id=getattr(request, "request_id", None) or new_request_id(),
        ),
        gate=process_gate(),
    )
    if answer.decision is not None:
        after_decision(answer.decision)
    response = _response(answer, method)
    _record_outcome(
        answer, (time.perf_counter() - started) * 1000, prefer=request.headers.get("Prefer", "")
    )
    _record_first_success(answer)
    return response


def _record_first_success(answer: SandboxAnswer) -> None:
    """The onboarding checklist's "first sandbox call": a call the sandbox answered 2xx."""
    decision = answer.decision
    if decision is None or not decision.allowed or not 200 <= answer.status < 300:
        return
    try:
        sandbox_success(decision.key.organization_id, timezone.now())
    except DatabaseError:
        logger.exception("sandbox: could not record the onboarding milestone")


@csrf_exempt
def sandbox_unknown(request: HttpRequest, rest: str = "") -> HttpResponse:
    """`/sandbox/` paths without a product and version."""
    answer = problem(
        404,
        "sandbox_not_found",
        "Sandbox URLs are /sandbox/<product>/<version>/<path>; the reference at /docs/ "
        "lists the products and versions.",
        title="Not found",
    )
    return _response(answer, request.method.upper())
