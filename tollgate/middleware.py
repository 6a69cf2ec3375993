"""Django and ASGI middleware that asks the gate before each call of your API.

The API key is read from `Authorization: Bearer <key>` or `X-API-Key`. A denied call is
answered here with problem+json (401, 403, 404, 410 or 429) and the gate's RateLimit
headers; an allowed one reaches your view with the decision in `request.tollgate` (Django)
or `scope["state"]["tollgate"]` (ASGI), and its response carries the RateLimit headers.
Usage needs no reporting from here: the gate meters every allowed call, in batches, itself.
If the gate cannot be reached, calls are refused with 503 (or let through with
`FAIL_OPEN`).

What the gate cannot see is your API's answer. For every call it passed on, the middleware
measures the answer's status and duration and hands them to an OutcomeReporter
(tollgate/reporter.py), which sends them in batches to `POST /api/v1/gate/outcomes` from a
background thread: Tollgate's public status page is computed from them. Reporting never
blocks or fails a request; `REPORT_OUTCOMES: False` turns it off.
"""

import asyncio
import contextlib
import json
import time

from tollgate.client import GateAnswer, GateClient
from tollgate.reporter import OutcomeReporter, utc_now_iso

STATUS_BY_CODE = {
    "key_missing": 401,
    "key_malformed": 401,
    "key_invalid": 401,
    "key_revoked": 401,
    "key_expired": 401,
    "ip_not_allowed": 403,
    "scope_missing": 403,
    "endpoint_not_in_plan": 403,
    "blocked": 403,
    "payment_past_due": 402,
    "spend_cap_reached": 402,
    "endpoint_unknown": 404,
    "endpoint_ambiguous": 404,
    "endpoint_sunset": 410,
    "rate_limited": 429,
    "quota_exhausted": 429,
    "gate_unavailable": 503,
}
PASSED_HEADERS = ("RateLimit-Policy", "RateLimit", "Retry-After", "Deprecation", "Sunset")


def api_key_from(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return headers.get("x-api-key") or None


def problem(code: str, detail: str) -> tuple[int, bytes]:
    status = STATUS_BY_CODE.get(code, 403)
    body = {
        "type": f"https://tollgate.dev/problems/{code}",
        "title": "Request refused",
        "status": status,
        "code": code,
        "detail": detail,
    }
    return status, json.dumps(body).encode()


def decide(
    client: GateClient,
    headers: dict[str, str],
    method: str,
    path: str,
    ip: str | None,
    fail_open: bool,
) -> tuple[GateAnswer | None, tuple | None]:
    """(answer, None) to let the call through, or (answer, (status, body)) to refuse it."""
    key = api_key_from(headers)
    if not key:
        return None, problem("key_missing", "Send your API key in Authorization: Bearer.")
    try:
        answer = client.verify(key=key, method=method, path=path, ip=ip)
    except (OSError, ValueError):
        if fail_open:
            return None, None
        return None, problem("gate_unavailable", "The API gate could not be reached.")
    if answer.status != 200:
        return answer, problem("gate_unavailable", f"The gate answered {answer.status}.")
    if not answer.allowed:
        return answer, problem(answer.code, f"Refused: {answer.code}.")
    return answer, None


def outcome_for(
    client: GateClient,
    answer: GateAnswer,
    method: str,
    path: str,
    status: int,
    started: float,
    at: str,
) -> dict:
    """The body of one outcome, as POST /api/v1/gate/outcomes takes it: the same method,
    path, product and version the gate matched, so Tollgate finds the same endpoint."""
    outcome = {
        "request_id": answer.body.get("request_id"),
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "at": at,
        "environment": answer.body.get("environment") or "live",
    }
    if client.product:
        outcome["product"] = client.product
    if client.version:
        outcome["version"] = client.version
    if not outcome["request_id"]:
        del outcome["request_id"]
    return outcome


def reporter_from(config: dict) -> OutcomeReporter | None:
    if not config.get("REPORT_OUTCOMES", True) or not config.get("URL"):
        return None
    return OutcomeReporter(
        config["URL"],
        config["TOKEN"],
        flush_seconds=config.get("OUTCOMES_FLUSH_SECONDS", 5.0),
        batch_size=config.get("OUTCOMES_BATCH_SIZE", 500),
        max_buffer=config.get("OUTCOMES_MAX_BUFFER", 10_000),
    )


def _settings():
    from django.conf import settings

    return getattr(settings, "TOLLGATE", {})


class TollgateMiddleware:
    """Django: `MIDDLEWARE = [..., "tollgate.middleware.TollgateMiddleware"]`."""

    def __init__(
        self,
        get_response,
        client: GateClient | None = None,
        reporter: OutcomeReporter | None = None,
    ):
        self.get_response = get_response
        config = _settings()
        self.fail_open = bool(config.get("FAIL_OPEN", False))
        # An injected client comes without reporting unless a reporter is injected too.
        self.reporter = reporter if (reporter or client) else reporter_from(config)
        self.client = client or GateClient(
            config["URL"],
            config["TOKEN"],
            timeout=config.get("TIMEOUT", 2.0),
            product=config.get("PRODUCT"),
            version=config.get("VERSION"),
            denial_cache_seconds=config.get("DENIAL_CACHE_SECONDS", 2.0),
        )

    def __call__(self, request):
        from django.http import HttpResponse

        headers = {name.lower(): value for name, value in request.headers.items()}
        answer, refusal = decide(
            self.client,
            headers,
            request.method,
            request.path,
            request.META.get("REMOTE_ADDR"),
            self.fail_open,
        )
        if refusal is not None:
            status, body = refusal
            response = HttpResponse(body, status=status, content_type="application/problem+json")
        else:
            request.tollgate = answer.body if answer else None
            if self.reporter is None or answer is None:
                response = self.get_response(request)
            else:
                response = self._measured(request, answer)
        for name in PASSED_HEADERS:
            if answer is not None and name in answer.headers:
                response[name] = answer.headers[name]
        return response

    def _measured(self, request, answer: GateAnswer):
        at, started = utc_now_iso(), time.perf_counter()
        status = 500  # what Django answers when the view raises
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            with contextlib.suppress(Exception):  # reporting never fails the request
                self.reporter.report(
                    outcome_for(
                        self.client, answer, request.method, request.path, status, started, at
                    )
                )


class TollgateASGIMiddleware:
    """ASGI: `app = TollgateASGIMiddleware(app, url=..., token=...)`."""

    def __init__(
        self,
        app,
        *,
        url: str,
        token: str,
        fail_open: bool = False,
        client: GateClient | None = None,
        reporter: OutcomeReporter | None = None,
        report_outcomes: bool = True,
        **options,
    ):
        self.app = app
        self.fail_open = fail_open
        self.client = client or GateClient(url, token, **options)
        if reporter is None and client is None and report_outcomes:
            reporter = OutcomeReporter(url, token)
        self.reporter = reporter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        client_address = scope.get("client") or (None, None)
        answer, refusal = await asyncio.to_thread(
            decide,
            self.client,
            headers,
            scope["method"],
            scope["path"],
            client_address[0],
            self.fail_open,
        )
        passed = [
            (name.lower().encode(), answer.headers[name].encode())
            for name in PASSED_HEADERS
            if answer is not None and name in answer.headers
        ]
        if refusal is not None:
            status, body = refusal
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                        *passed,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return None
        scope.setdefault("state", {})["tollgate"] = answer.body if answer else None
        measure = self.reporter is not None and answer is not None
        at, started = utc_now_iso(), time.perf_counter()
        answered = {"status": 500, "reported": False}  # an app that raises gets a 500

        def report() -> None:
            if measure and not answered["reported"]:
                answered["reported"] = True
                with contextlib.suppress(Exception):  # reporting never fails the request
                    self.reporter.report(
                        outcome_for(
                            self.client,
                            answer,
                            scope["method"],
                            scope["path"],
                            answered["status"],
                            started,
                            at,
                        )
                    )

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *passed]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                report()  # the whole answer is out: its duration is known

        try:
            return await self.app(scope, receive, send_with_headers)
        finally:
            report()
