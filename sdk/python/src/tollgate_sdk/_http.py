"""The one place the SDK talks HTTP: auth, JSON, retries, Idempotency-Key and errors.

Kept apart from the resource classes so the retry rules (which statuses, how long to
wait, when a POST is safe to send again) are written once for every endpoint.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tollgate_sdk import __version__
from tollgate_sdk.errors import APIConnectionError, error_from_response, parse_retry_after

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
# 429: the request was not processed. 503: the server (or a proxy) refused it for now.
RETRY_STATUSES = frozenset({429, 503})
# 409 with this code: our own earlier attempt (timed out on our side) is still running on
# the server; waiting and sending the same key again gets its stored answer.
RETRY_CODES = frozenset({"idempotency_key_in_use"})

Params = Mapping[str, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """How persistent the client is.

    `max_retries` bounds the attempts after the first. Without a Retry-After header the wait
    grows exponentially from `initial_backoff` up to `max_backoff`, with jitter so clients
    that failed together do not come back together. A Retry-After is honoured as given up to
    `max_retry_after` seconds; a longer one is raised at once as RateLimitError instead of
    blocking the caller for minutes.
    """

    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * (2.0**attempt))
        # Equal jitter: at least half the ceiling, so the wait still grows with each attempt.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not cryptographic


def _json_default(value: Any) -> Any:
    """Money and quantities go out as exact decimal strings, times as ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # The API refuses naive times; failing here names the caller's line.
            raise ValueError(f"{value!r} has no time zone; the API needs one (use UTC).")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(body: Any) -> bytes:
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


def clean_params(params: Params | None) -> dict[str, Any]:
    """Drops None values and turns lists into the API's comma-separated form."""
    cleaned: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, datetime | date | Decimal | uuid.UUID):
            value = _json_default(value)
        cleaned[name] = value
    return cleaned


def cursor_from(url: str | None) -> str | None:
    """The cursor of a `next`/`previous` link; only it is followed, against our base URL,
    so a proxy that rewrites the host in links cannot send the client elsewhere."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("cursor")
    return values[0] if values else None


def api_base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("TOLLGATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def resolve_token(token: str | None) -> str:
    token = token or os.environ.get("TOLLGATE_TOKEN")
    if not token:
        raise ValueError("Pass token=... or set TOLLGATE_TOKEN (a tg_org_ or tg_op_ token).")
    return token


def default_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, application/problem+json",
        "User-Agent": f"tollgate-sdk-python/{__version__}",
    }


@dataclass
class PreparedRequest:
    """Everything sent on each attempt: the body is encoded once, so a retry sends the same
    bytes under the same Idempotency-Key and the server replays instead of refusing it."""

    method: str
    path: str
    params: dict[str, Any]
    content: bytes | None
    headers: dict[str, str]


def prepare(
    method: str,
    path: str,
    *,
    params: Params | None = None,
    json_body: Any = None,
    idempotency_key: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> PreparedRequest:
    method = method.upper()
    request_headers = dict(headers or {})
    content = None
    if json_body is not None or method == "POST":
        content = encode_json({} if json_body is None else json_body)
        request_headers["Content-Type"] = "application/json"
    if method == "POST":
        # Every POST carries a key, so a retry after a timeout can never act twice.
        request_headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
    return PreparedRequest(method, path, clean_params(params), content, request_headers)


def retry_delay(response: httpx.Response | None, attempt: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before another attempt, or None when this outcome is final."""
    if attempt >= policy.max_retries:
        return None
    if response is None:  # no answer at all: connection refused, timeout
        return policy.backoff(attempt)
    retryable = response.status_code in RETRY_STATUSES
    if response.status_code == 409:
        retryable = _problem_code(response) in RETRY_CODES
    if not retryable:
        return None
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retry_after is None:
        return policy.backoff(attempt)
    if retry_after > policy.max_retry_after:
        return None
    return retry_after


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def decode(response: httpx.Response) -> Any:
    """The answer's JSON, None for 204, text for CSV; raises the typed error for >= 400."""
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_from_response(
            response.status_code, body, response.headers, response.headers.get("x-request-id")
        )
    if response.status_code == 204 or not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


class SyncTransport:
    """Sends prepared requests with the retry policy, over one pooled httpx.Client."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
        http_client: httpx.Client | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.retry = retry
        self.sleep = sleep
        self._owns_client = http_client is None
        self.client = http_client or httpx.Client(timeout=timeout)
        self.base_url = base_url
        self.headers = default_headers(token)

    def send(self, prepared: PreparedRequest) -> httpx.Response:
        attempt = 0
        while True:
            response: httpx.Response | None
            try:
                response = self.client.request(
                    prepared.method,
                    self.base_url + prepared.path,
                    params=prepared.params,
                    content=prepared.content,
                    headers={**self.headers, **prepared.headers},
                )
            except httpx.TransportError as error:
                delay = retry_delay(None, attempt, self.retry)
                if delay is None:
                    raise APIConnectionError(
                        f"{prepared.method} {prepared.path}: {error}"
                    ) from error
                response = None
            else:
                delay = retry_delay(response, attempt, self.retry)
                if delay is None:
                    return response
                response.close()
            self.sleep(delay)
            attempt += 1

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class AsyncTransport:
    """The same rules as SyncTransport over an httpx.AsyncClient."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
        http_client: httpx.AsyncClient | None,
        sleep: Callable[[float], Any] | None,
    ) -> None:
        import asyncio

        self.retry = retry
        self.sleep = sleep or asyncio.sleep
        self._owns_client = http_client is None
        self.client = http_client or httpx.AsyncClient(timeout=timeout)
        self.base_url = base_url
        self.headers = default_headers(token)

    async def send(self, prepared: PreparedRequest) -> httpx.Response:
        attempt = 0
        while True:
            response: httpx.Response | None
            try:
                response = await self.client.request(
                    prepared.method,
                    self.base_url + prepared.path,
                    params=prepared.params,
                    content=prepared.content,
                    headers={**self.headers, **prepared.headers},
                )
            except httpx.TransportError as error:
                delay = retry_delay(None, attempt, self.retry)
                if delay is None:
                    raise APIConnectionError(
                        f"{prepared.method} {prepared.path}: {error}"
                    ) from error
                response = None
            else:
                delay = retry_delay(response, attempt, self.retry)
                if delay is None:
                    return response
                await response.aclose()
            result = self.sleep(delay)
            if hasattr(result, "__await__"):
                await result
            attempt += 1

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()
