"""Resource groups of the management API, one class per area, as attributes of Tollgate.

Each method is a thin, typed wrapper over one endpoint: the HTTP rules (retries,
idempotency, errors) live in `_http`, so a method only names the path and the fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from tollgate_sdk.pagination import Page
from tollgate_sdk.types import (
    ApiKey,
    ApiKeyWithSecret,
    DeliveryAttempt,
    DeliveryQueued,
    Environment,
    EventType,
    Invoice,
    Meter,
    Plan,
    Project,
    Quote,
    Subscription,
    UsageCorrection,
    UsageEvent,
    UsageIngestResult,
    UsageQuery,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
    WebhookEvent,
)

if TYPE_CHECKING:
    from tollgate_sdk.client import Tollgate


class _Resource:
    def __init__(self, client: Tollgate) -> None:
        self._client = client


class Projects(_Resource):
    """`/projects`: an organization's projects (org token, `projects:*`)."""

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Project]:
        return self._client.get_page("/projects", limit=limit, cursor=cursor)

    def iterate(self, *, page_size: int | None = None) -> Iterator[Project]:
        return self._client.iterate("/projects", page_size=page_size)

    def create(
        self, *, name: str, description: str | None = None, idempotency_key: str | None = None
    ) -> Project:
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        return cast(
            Project,
            self._client.request("POST", "/projects", json=body, idempotency_key=idempotency_key),
        )

    def retrieve(self, project_id: str) -> Project:
        return cast(Project, self._client.request("GET", f"/projects/{project_id}"))


class Keys(_Resource):
    """`/keys`: API keys of the organization's projects; the secret is returned only once."""

    def list(
        self,
        *,
        project: str | None = None,
        environment: Environment | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[ApiKey]:
        filters = {"project": project, "environment": environment, "status": status}
        return self._client.get_page("/keys", filters, limit=limit, cursor=cursor)

    def iterate(
        self,
        *,
        project: str | None = None,
        environment: Environment | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[ApiKey]:
        filters = {"project": project, "environment": environment, "status": status}
        return self._client.iterate("/keys", filters, page_size=page_size)

    def create(
        self,
        *,
        project: str,
        name: str,
        environment: Environment,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | str | None = None,
        allowed_cidrs: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiKeyWithSecret:
        body: dict[str, Any] = {"project": project, "name": name, "environment": environment}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if expires_at is not None:
            body["expires_at"] = expires_at
        if allowed_cidrs is not None:
            body["allowed_cidrs"] = list(allowed_cidrs)
        return cast(
            ApiKeyWithSecret,
            self._client.request("POST", "/keys", json=body, idempotency_key=idempotency_key),
        )

    def retrieve(self, key_id: str) -> ApiKey:
        return cast(ApiKey, self._client.request("GET", f"/keys/{key_id}"))

    def rotate(
        self,
        key_id: str,
        *,
        grace_period_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> ApiKeyWithSecret:
        body = (
            {} if grace_period_seconds is None else {"grace_period_seconds": grace_period_seconds}
        )
        return cast(
            ApiKeyWithSecret,
            self._client.request(
                "POST", f"/keys/{key_id}/rotate", json=body, idempotency_key=idempotency_key
            ),
        )

    def revoke(self, key_id: str, *, idempotency_key: str | None = None) -> ApiKey:
        return cast(
            ApiKey,
            self._client.request(
                "POST", f"/keys/{key_id}/revoke", json={}, idempotency_key=idempotency_key
            ),
        )


class Usage(_Resource):
    """`/usage...`: ingestion and corrections (operator token), queries and CSV evidence."""

    def ingest(
        self, events: Sequence[UsageEvent | dict[str, Any]], *, idempotency_key: str | None = None
    ) -> UsageIngestResult:
        """Up to 1,000 events. Each event's `id` already dedupes it forever; the request's
        Idempotency-Key additionally replays the whole answer for 24 hours."""
        return cast(
            UsageIngestResult,
            self._client.request(
                "POST",
                "/usage/events",
                json={"events": list(events)},
                idempotency_key=idempotency_key,
            ),
        )

    def query(
        self,
        *,
        meter: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        customer: str | None = None,
        environment: Environment | None = None,
        project: str | None = None,
        api_key: str | None = None,
        endpoint: str | None = None,
        group_by: Sequence[str] | None = None,
    ) -> UsageQuery:
        """Usage of one meter over [start, end) (default: this month so far)."""
        params = {
            "meter": meter,
            "from": start,
            "to": end,
            "customer": customer,
            "environment": environment,
            "project": project,
            "api_key": api_key,
            "endpoint": endpoint,
            "group_by": list(group_by) if group_by else None,
        }
        return cast(UsageQuery, self._client.request("GET", "/usage", params=params))

    def export_csv(
        self,
        *,
        meter: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        customer: str | None = None,
        environment: Environment | None = None,
    ) -> str:
        """The ledger rows behind a usage figure, as CSV text."""
        params = {
            "meter": meter,
            "from": start,
            "to": end,
            "customer": customer,
            "environment": environment,
        }
        return cast(str, self._client.request("GET", "/usage/export.csv", params=params))

    def correct(
        self, *, event_id: str, customer: str, reason: str, idempotency_key: str | None = None
    ) -> UsageCorrection:
        body = {"event_id": event_id, "customer": customer, "reason": reason}
        return cast(
            UsageCorrection,
            self._client.request(
                "POST", "/usage/corrections", json=body, idempotency_key=idempotency_key
            ),
        )


class Meters(_Resource):
    """`/meters`: what is measured (operators create; org tokens may read)."""

    def list(self) -> list[Meter]:
        return cast(list[Meter], self._client.request("GET", "/meters")["results"])

    def create(
        self,
        *,
        code: str,
        name: str,
        unit: str,
        aggregation: str,
        unique_property: str | None = None,
        display_unit: str | None = None,
        display_factor: Decimal | str | None = None,
        idempotency_key: str | None = None,
    ) -> Meter:
        body: dict[str, Any] = {"code": code, "name": name, "unit": unit}
        body["aggregation"] = aggregation
        optional = {
            "unique_property": unique_property,
            "display_unit": display_unit,
            "display_factor": display_factor,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        return cast(
            Meter,
            self._client.request("POST", "/meters", json=body, idempotency_key=idempotency_key),
        )


class Plans(_Resource):
    """`/plans` and `/pricing/quote`: the public catalog and the price calculator."""

    def list(self) -> list[Plan]:
        return cast(list[Plan], self._client.request("GET", "/plans")["results"])

    def quote(
        self,
        *,
        plan: str,
        usage: dict[str, Decimal | str | int] | None = None,
        addons: Sequence[str | dict[str, Any]] | None = None,
        coupon: str | None = None,
        version: int | None = None,
    ) -> Quote:
        """What `usage` (meter code → quantity) would cost on `plan`; nothing is saved."""
        body: dict[str, Any] = {"plan": plan}
        optional = {"usage": usage, "addons": addons, "coupon": coupon, "version": version}
        body.update({name: value for name, value in optional.items() if value is not None})
        return cast(Quote, self._client.request("POST", "/pricing/quote", json=body))


class Subscriptions(_Resource):
    """`/subscriptions...`: the organization's plan. Operator tokens name the `customer`."""

    def create(
        self,
        *,
        plan: str,
        coupon: str | None = None,
        customer: str | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Subscribes, or changes the plan of the current subscription."""
        body = _without_none({"plan": plan, "coupon": coupon, "customer": customer})
        return cast(
            Subscription,
            self._client.request(
                "POST", "/subscriptions", json=body, idempotency_key=idempotency_key
            ),
        )

    def current(self, *, customer: str | None = None) -> Subscription:
        return cast(
            Subscription,
            self._client.request("GET", "/subscriptions/current", params={"customer": customer}),
        )

    def preview(self, *, customer: str | None = None) -> dict[str, Any]:
        """This period so far and its forecast, priced like the invoice will be."""
        return cast(
            dict[str, Any],
            self._client.request(
                "GET", "/subscriptions/current/preview", params={"customer": customer}
            ),
        )

    def preview_change(self, *, plan: str, customer: str | None = None) -> dict[str, Any]:
        body = _without_none({"plan": plan, "customer": customer})
        return cast(
            dict[str, Any],
            self._client.request("POST", "/subscriptions/current/preview-change", json=body),
        )

    def cancel(
        self, *, customer: str | None = None, idempotency_key: str | None = None
    ) -> Subscription:
        return cast(
            Subscription,
            self._client.request(
                "POST",
                "/subscriptions/current/cancel",
                json=_without_none({"customer": customer}),
                idempotency_key=idempotency_key,
            ),
        )

    def add_addon(
        self,
        *,
        addon: str,
        quantity: int = 1,
        customer: str | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        body = _without_none({"addon": addon, "quantity": quantity, "customer": customer})
        return cast(
            Subscription,
            self._client.request(
                "POST",
                "/subscriptions/current/addons",
                json=body,
                idempotency_key=idempotency_key,
            ),
        )

    def estimate(
        self, *, meter: str, quantity: Decimal | str | int, customer: str | None = None
    ) -> dict[str, Any]:
        """What `quantity` more units of `meter` would add to this period's bill."""
        body = _without_none({"meter": meter, "quantity": quantity, "customer": customer})
        return cast(dict[str, Any], self._client.request("POST", "/estimates", json=body))


class Invoices(_Resource):
    """`/invoices...`: read by org tokens; finalize, void and credit notes are operator-only."""

    def list(
        self,
        *,
        status: str | None = None,
        customer: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Invoice]:
        filters = {"status": status, "customer": customer}
        return self._client.get_page("/invoices", filters, limit=limit, cursor=cursor)

    def iterate(
        self,
        *,
        status: str | None = None,
        customer: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Invoice]:
        filters = {"status": status, "customer": customer}
        return self._client.iterate("/invoices", filters, page_size=page_size)

    def retrieve(self, invoice_id: str) -> Invoice:
        return cast(Invoice, self._client.request("GET", f"/invoices/{invoice_id}"))

    def finalize(self, invoice_id: str, *, idempotency_key: str | None = None) -> Invoice:
        return self._action(invoice_id, "finalize", idempotency_key)

    def void(self, invoice_id: str, *, idempotency_key: str | None = None) -> Invoice:
        return self._action(invoice_id, "void", idempotency_key)

    def mark_uncollectible(self, invoice_id: str, *, idempotency_key: str | None = None) -> Invoice:
        return self._action(invoice_id, "mark-uncollectible", idempotency_key)

    def create_credit_note(
        self,
        invoice_id: str,
        *,
        amount: Decimal | str,
        reason: str | None = None,
        refund: bool = False,
        idempotency_key: str | None = None,
    ) -> Invoice:
        body = _without_none({"amount": amount, "reason": reason, "refund": refund})
        return cast(
            Invoice,
            self._client.request(
                "POST",
                f"/invoices/{invoice_id}/credit-notes",
                json=body,
                idempotency_key=idempotency_key,
            ),
        )

    def line_evidence_csv(self, invoice_id: str, line_id: str) -> str:
        return cast(
            str,
            self._client.request("GET", f"/invoices/{invoice_id}/lines/{line_id}/evidence.csv"),
        )

    def _action(self, invoice_id: str, action: str, idempotency_key: str | None) -> Invoice:
        return cast(
            Invoice,
            self._client.request(
                "POST", f"/invoices/{invoice_id}/{action}", idempotency_key=idempotency_key
            ),
        )


class WebhookEndpoints(_Resource):
    """`/webhook-endpoints...`: where events are delivered; the secret is shown once."""

    def list(
        self,
        *,
        environment: Environment | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[WebhookEndpoint]:
        filters = {"environment": environment, "status": status}
        return self._client.get_page("/webhook-endpoints", filters, limit=limit, cursor=cursor)

    def iterate(
        self,
        *,
        environment: Environment | None = None,
        status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[WebhookEndpoint]:
        filters = {"environment": environment, "status": status}
        return self._client.iterate("/webhook-endpoints", filters, page_size=page_size)

    def create(
        self,
        *,
        url: str,
        environment: Environment,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> WebhookEndpointWithSecret:
        body = _without_none(
            {
                "url": url,
                "environment": environment,
                "event_types": list(event_types) if event_types is not None else None,
                "description": description,
            }
        )
        return cast(
            WebhookEndpointWithSecret,
            self._client.request(
                "POST", "/webhook-endpoints", json=body, idempotency_key=idempotency_key
            ),
        )

    def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        return cast(
            WebhookEndpoint, self._client.request("GET", f"/webhook-endpoints/{endpoint_id}")
        )

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        environment: Environment | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        body = _without_none(
            {
                "url": url,
                "environment": environment,
                "event_types": list(event_types) if event_types is not None else None,
                "description": description,
            }
        )
        return cast(
            WebhookEndpoint,
            self._client.request("PATCH", f"/webhook-endpoints/{endpoint_id}", json=body),
        )

    def delete(self, endpoint_id: str) -> None:
        self._client.request("DELETE", f"/webhook-endpoints/{endpoint_id}")

    def disable(self, endpoint_id: str, *, reason: str | None = None) -> WebhookEndpoint:
        return cast(
            WebhookEndpoint,
            self._client.request(
                "POST",
                f"/webhook-endpoints/{endpoint_id}/disable",
                json=_without_none({"reason": reason}),
            ),
        )

    def enable(self, endpoint_id: str) -> WebhookEndpoint:
        return cast(
            WebhookEndpoint,
            self._client.request("POST", f"/webhook-endpoints/{endpoint_id}/enable"),
        )

    def rotate_secret(self, endpoint_id: str) -> WebhookEndpointWithSecret:
        return cast(
            WebhookEndpointWithSecret,
            self._client.request("POST", f"/webhook-endpoints/{endpoint_id}/rotate-secret"),
        )

    def test(self, endpoint_id: str) -> DeliveryQueued:
        """Queues a `ping`-style test delivery to the endpoint."""
        return cast(
            DeliveryQueued,
            self._client.request("POST", f"/webhook-endpoints/{endpoint_id}/test"),
        )

    def attempts(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        event_type: str | None = None,
        since: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[DeliveryAttempt]:
        filters = {"status": status, "event_type": event_type, "since": since}
        return self._client.iterate(
            f"/webhook-endpoints/{endpoint_id}/attempts", filters, page_size=page_size
        )

    def replay(self, endpoint_id: str, *, since: datetime | str) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self._client.request(
                "POST", f"/webhook-endpoints/{endpoint_id}/replay", json={"since": since}
            ),
        )


class Events(_Resource):
    """`/events`: what Tollgate emitted for the organization, and re-delivery."""

    def list(
        self,
        *,
        type: str | None = None,
        environment: Environment | None = None,
        since: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[WebhookEvent]:
        filters = {"type": type, "environment": environment, "since": since}
        return self._client.get_page("/events", filters, limit=limit, cursor=cursor)

    def iterate(
        self,
        *,
        type: str | None = None,
        environment: Environment | None = None,
        since: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[WebhookEvent]:
        filters = {"type": type, "environment": environment, "since": since}
        return self._client.iterate("/events", filters, page_size=page_size)

    def redeliver(self, event_id: str, *, endpoint: str | None = None) -> DeliveryQueued:
        return cast(
            DeliveryQueued,
            self._client.request(
                "POST",
                f"/events/{event_id}/redeliver",
                json=_without_none({"endpoint": endpoint}),
            ),
        )


class EventTypes(_Resource):
    """`/event-types`: the public event catalog with each type's JSON Schema."""

    def list(self) -> list[EventType]:
        return cast(list[EventType], self._client.request("GET", "/event-types")["results"])


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if value is not None}


class Gate(_Resource):
    """`/verify`: the gate's decision for one call (operator token, `gate:verify`).

    Always 200 with `allowed` and a `code`; a denial is a decision, not an exception.
    """

    def verify(
        self,
        *,
        key: str,
        method: str,
        path: str,
        ip: str | None = None,
        cost: int | None = None,
        product: str | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        body = _without_none(
            {
                "key": key,
                "method": method,
                "path": path,
                "ip": ip,
                "cost": cost,
                "product": product,
                "version": version,
            }
        )
        return cast(dict[str, Any], self._client.request("POST", "/verify", json=body))
