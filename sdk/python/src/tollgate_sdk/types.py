"""TypedDicts for the API's resources, so editors and type checkers know every field.

Responses stay plain dicts at run time (JSON as the API sent it): a field the server adds
later reaches the caller instead of being dropped by a stale class. Money and quantities
are decimal strings, never floats; times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Environment = Literal["live", "test"]
KeyStatus = Literal["active", "expiring", "expired", "revoked"]


class Project(TypedDict):
    id: str
    name: str
    description: str
    created_at: str


class ApiKey(TypedDict):
    id: str
    name: str
    prefix: str
    project: str
    environment: Environment
    scopes: list[str]
    expires_at: str | None
    allowed_cidrs: list[str]
    status: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    grace_ends_at: str | None
    replaced_by: str | None


class ApiKeyWithSecret(ApiKey):
    key: str  # the secret: shown in this response only


class Meter(TypedDict):
    id: str
    code: str
    name: str
    unit: str
    aggregation: Literal["count", "sum", "max", "last", "unique_count"]
    unique_property: str
    display_unit: str
    display_factor: str
    created_at: str


class UsageEvent(TypedDict):
    """One event to ingest; `id` is the caller's idempotency key for that event, forever."""

    id: str
    meter: str
    customer: NotRequired[str]
    api_key: NotRequired[str]
    key_id: NotRequired[str]
    project: NotRequired[str]
    environment: NotRequired[Environment]
    quantity: NotRequired[str | int]
    timestamp: NotRequired[str]
    endpoint: NotRequired[str]
    properties: NotRequired[dict[str, Any]]


class RejectedEvent(TypedDict):
    index: int
    code: str
    detail: str


class UsageIngestResult(TypedDict):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]


class UsageCorrection(TypedDict):
    id: str
    event_id: str
    customer: str
    original_ledger_id: int
    reversal_ledger_id: int
    reason: str
    created_at: str


class UsageRow(TypedDict, total=False):
    """A total, or one group: the group names asked for in `group_by` appear as keys."""

    quantity: str
    display_quantity: str
    day: str
    hour: str
    project: str | None
    key: str | None
    endpoint: str | None


UsageQuery = TypedDict(
    "UsageQuery",
    {
        "meter": str,
        "aggregation": str,
        "unit": str,
        "display_unit": str,
        "environment": Environment,
        "from": str,
        "to": str,
        "group_by": list[str],
        "results": list[UsageRow],
    },
)


class PlanCharge(TypedDict):
    meter: str
    model: str
    free_units: str
    unit_amount: str
    tiers: list[dict[str, Any]] | None
    package_size: str | None
    package_amount: str
    minimum: str | None
    maximum: str | None


class Plan(TypedDict):
    code: str
    name: str
    description: str
    tier_rank: int
    currency: str
    interval: str
    trial_days: int
    public: bool
    version: int
    base_fee: str
    minimum_commitment: str | None
    commitment_discount_percent: str | None
    charges: list[PlanCharge]
    entitlements: dict[str, Any]


class QuoteLine(TypedDict):
    kind: str
    description: str
    meter: str | None
    quantity: str | None
    amount: str
    tiers: list[dict[str, Any]]
    period: NotRequired[dict[str, str]]
    billable_quantity: NotRequired[str]
    adjusted_by: NotRequired[Any]


class Quote(TypedDict):
    plan: str
    version: int
    currency: str
    lines: list[QuoteLine]
    subtotal: str
    discount: str
    credits: str
    tax: str
    total: str


class SubscriptionAddOn(TypedDict):
    code: str
    quantity: int


class Subscription(TypedDict):
    id: str
    customer: str
    plan: str | None
    version: int | None
    status: str
    started_at: str
    current_period_start: str
    current_period_end: str
    trial_ends_at: str | None
    cancel_at_period_end: bool
    coupon: str | None
    addons: list[SubscriptionAddOn]
    scheduled_migration: dict[str, Any] | None


class InvoiceLine(TypedDict):
    id: str
    kind: str
    description: str
    meter: str | None
    quantity: str | None
    amount: str
    tiers: Any
    evidence_url: str | None
    usage_query_url: str | None
    period: dict[str, str] | None
    breakdown: Any
    explanation: str | None
    adjusts: dict[str, str] | None


class Invoice(TypedDict):
    id: str
    number: str | None
    status: str
    customer: dict[str, Any]
    currency: str
    period_start: str
    period_end: str
    plan: Any
    lines: list[InvoiceLine]
    subtotal: str
    discount: str
    credits: str
    tax: str
    tax_rate: Any
    total: str
    amount_paid: str
    amount_credited: str
    amount_due: str
    credit_notes: list[dict[str, Any]]
    issued_at: str | None
    due_at: str | None
    paid_at: str | None
    finalizes_at: str | None


class WebhookEndpoint(TypedDict):
    id: str
    url: str
    description: str
    event_types: list[str]
    environment: Environment
    status: str
    disabled_reason: str
    secret_fingerprint: str
    previous_secret_expires_at: str | None
    created_at: str
    updated_at: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str  # `whsec_...`: shown in this response only


class WebhookEvent(TypedDict):
    id: str
    webhook_id: str
    type: str
    version: int
    environment: Environment
    created_at: str
    data: dict[str, Any]


class DeliveryAttempt(TypedDict):
    id: str
    event_id: str
    webhook_id: str
    event_type: str
    delivery_id: str
    attempted_at: str
    status_code: int | None
    succeeded: bool
    duration_ms: int | None
    error: str
    trigger: str
    request_headers: dict[str, str]
    response_body: str


class DeliveryQueued(TypedDict):
    event_id: str
    webhook_id: str
    deliveries: list[dict[str, str]]


class EventType(TypedDict):
    name: str
    version: int
    description: str
    schema: dict[str, Any]
    examples: list[Any]
