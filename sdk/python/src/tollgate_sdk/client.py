"""The clients: `Tollgate` (sync, with resource groups) and `AsyncTollgate` (asyncio).

Both share the HTTP rules in `_http`; the async client offers the generic calls
(`request`, `get_page`, `iterate`) for every endpoint.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx

from tollgate_sdk import _http
from tollgate_sdk._http import AsyncTransport, Params, RetryPolicy, SyncTransport, prepare
from tollgate_sdk.pagination import Page, aiterate_pages, iterate_pages
from tollgate_sdk.resources import (
    Events,
    EventTypes,
    Gate,
    Invoices,
    Keys,
    Meters,
    Plans,
    Projects,
    Subscriptions,
    Usage,
    WebhookEndpoints,
)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def _page_params(params: Params | None, limit: int | None, cursor: str | None) -> dict[str, Any]:
    merged = dict(params or {})
    merged["limit"] = limit
    merged["cursor"] = cursor
    return merged


class Tollgate:
    """A client for Tollgate's management API.

    `token` is an org token (`tg_org_...`) or an operator token (`tg_op_...`); it defaults
    to $TOLLGATE_TOKEN. `base_url` is the server (`https://tollgate.example.com`; `/api/v1`
    is added unless present), defaulting to $TOLLGATE_BASE_URL.

    POSTs carry an Idempotency-Key (yours, or a new UUID) reused by every retry; 429 and 503
    are retried up to `max_retries` times honouring Retry-After. `sleep` is how the client
    waits between attempts (time.sleep by default; a test or a scheduler may pass its own).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = _http.api_base_url(base_url)
        self.retry_policy = RetryPolicy(
            max_retries=max_retries, max_backoff=max_backoff, max_retry_after=max_retry_after
        )
        self._transport = SyncTransport(
            token=_http.resolve_token(token),
            base_url=self.base_url,
            timeout=timeout,
            retry=self.retry_policy,
            http_client=http_client,
            sleep=sleep or time.sleep,
        )
        self.projects = Projects(self)
        self.keys = Keys(self)
        self.usage = Usage(self)
        self.meters = Meters(self)
        self.plans = Plans(self)
        self.subscriptions = Subscriptions(self)
        self.invoices = Invoices(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.events = Events(self)
        self.event_types = EventTypes(self)
        self.gate = Gate(self)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any endpoint: `path` is relative to /api/v1 (`"/keys"`). Returns the decoded body."""
        prepared = prepare(
            method,
            path,
            params=params,
            json_body=json,
            idempotency_key=idempotency_key,
            headers=headers,
        )
        return _http.decode(self._transport.send(prepared))

    def raw_request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Like `request`, with retries, but returns the response whatever its status
        (for headers such as `Idempotent-Replayed` or `X-Request-Id`)."""
        prepared = prepare(
            method,
            path,
            params=params,
            json_body=json,
            idempotency_key=idempotency_key,
            headers=headers,
        )
        return self._transport.send(prepared)

    def get_page(
        self,
        path: str,
        params: Params | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Any]:
        """One page of a cursor-paginated list; pass `page.next_cursor` for the next one."""
        body = self.request("GET", path, params=_page_params(params, limit, cursor))
        return Page.from_body(body)

    def iterate(
        self, path: str, params: Params | None = None, *, page_size: int | None = None
    ) -> Iterator[Any]:
        """Every item of a list, fetching pages lazily as the caller advances."""
        return iterate_pages(
            lambda cursor: self.get_page(path, params, limit=page_size, cursor=cursor)
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Tollgate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncTollgate:
    """The asyncio client: same authentication, retries, idempotency and errors as
    `Tollgate`, through the generic `request`, `get_page` and `iterate` calls."""

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.base_url = _http.api_base_url(base_url)
        self.retry_policy = RetryPolicy(
            max_retries=max_retries, max_backoff=max_backoff, max_retry_after=max_retry_after
        )
        self._transport = AsyncTransport(
            token=_http.resolve_token(token),
            base_url=self.base_url,
            timeout=timeout,
            retry=self.retry_policy,
            http_client=http_client,
            sleep=sleep,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        prepared = prepare(
            method,
            path,
            params=params,
            json_body=json,
            idempotency_key=idempotency_key,
            headers=headers,
        )
        return _http.decode(await self._transport.send(prepared))

    async def get_page(
        self,
        path: str,
        params: Params | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Any]:
        body = await self.request("GET", path, params=_page_params(params, limit, cursor))
        return Page.from_body(body)

    def iterate(
        self, path: str, params: Params | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[Any]:
        return aiterate_pages(
            lambda cursor: self.get_page(path, params, limit=page_size, cursor=cursor)
        )

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncTollgate:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
