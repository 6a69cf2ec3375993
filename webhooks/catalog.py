"""The event catalog: every event type Tollgate emits, with its version and JSON Schema.

`GET /api/v1/event-types`, the portal's catalog page and the AsyncAPI document are built
from this; webhooks.services.emit refuses a type that is not here, and the tests validate
every emitted payload's `data` against its schema.

Conventions of every `data` (docs/webhooks.md, "Event catalog"): ids are strings, amounts
and quantities are decimal strings (currency beside them), times are RFC 3339 in UTC, and
no event ever carries a secret (a key's raw value, a token): prefixes only. A change that
breaks a schema makes a new version of its type; adding an optional field does not.
"""

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    schema: dict  # JSON Schema (2020-12) of the event's `data`
    version: int = 1
    examples: list = field(default_factory=list)


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
        "additionalProperties": True,
    }


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


def _described(schema: dict, description: str) -> dict:
    return {**schema, "description": description}


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
STRING = {"type": "string"}
ID = {"type": "string", "minLength": 1}
DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
DATETIME = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
ENVIRONMENT = {"type": "string", "enum": ["test", "live"]}
STRINGS = {"type": "array", "items": STRING}
INTEGER = {"type": "integer", "minimum": 0}

ORGANIZATION = "6f1c2a4e-8b0d-4c52-9e1a-3d7b5f902c11"  # the examples' organization

# --- Keys -----------------------------------------------------------------------------------
KEY_FIELDS = {
    "id": ID,
    "name": STRING,
    "prefix": _described(STRING, "The key's visible prefix; the key itself is never sent."),
    "environment": ENVIRONMENT,
    "project": ID,
}
KEY_EXAMPLE = {
    "id": "0b9d1f7e-5a43-4c0e-9f3b-2d6a8e1c7b54",
    "name": "Production server",
    "prefix": "tg_live_3kT9",
    "environment": "live",
    "project": "c3a8e2d1-7f64-4b9a-8e05-1d2f3a4b5c6d",
}

# --- Marketplace installs ---------------------------------------------------------------
INSTALL_FIELDS = {
    "id": _described(ID, "The install's id."),
    "app": _object({"id": ID, "slug": STRING, "name": STRING}),
    "organization": _described(ID, "The installing organization."),
    "project": _described(ID, "The project the app was installed into."),
    "scopes": _described(STRINGS, "What the app may call: asked ∩ approved ∩ the plan."),
}
INSTALL_EXAMPLE = {
    "id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
    "app": {"id": "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b", "slug": "doc-sync", "name": "Doc Sync"},
    "organization": ORGANIZATION,
    "project": "c3a8e2d1-7f64-4b9a-8e05-1d2f3a4b5c6d",
    "scopes": ["read", "write"],
}

# --- Subscriptions --------------------------------------------------------------------------
SUBSCRIPTION_FIELDS = {
    "id": ID,
    "status": {"type": "string", "enum": ["trialing", "active", "canceled"]},
    "plan": _described(STRING, "The code of the plan in force."),
    "plan_version": {"type": "integer", "minimum": 1},
    "currency": CURRENCY,
    "started_at": DATETIME,
    "current_period_start": DATETIME,
    "current_period_end": DATETIME,
    "trial_ends_at": _nullable(DATETIME),
    "cancel_at_period_end": {"type": "boolean"},
}
SUBSCRIPTION_EXAMPLE = {
    "id": "9e2f4c1a-3b5d-4e6f-8a7b-0c1d2e3f4a5b",
    "status": "active",
    "plan": "pro",
    "plan_version": 1,
    "currency": "USD",
    "started_at": "2026-11-01T09:30:00Z",
    "current_period_start": "2026-11-01T09:30:00Z",
    "current_period_end": "2026-12-01T09:30:00Z",
    "trial_ends_at": None,
    "cancel_at_period_end": False,
}
SUBSCRIPTION_CHANGES = [
    "plan_changed",
    "cancel_scheduled",
    "addon_added",
    "addon_removed",
    "migration_scheduled",
]
PLAN_REFERENCE = _object({"plan": STRING, "plan_version": {"type": "integer", "minimum": 1}})

# --- Invoices -------------------------------------------------------------------------------
INVOICE_FIELDS = {
    "id": ID,
    "number": _described(STRING, "INV-<year>-<sequence>, without gaps."),
    "currency": CURRENCY,
    "total": DECIMAL,
    "amount_due": DECIMAL,
    "period_start": DATETIME,
    "period_end": DATETIME,
    "subscription": ID,
}
INVOICE_EXAMPLE = {
    "id": "4d3c2b1a-0f9e-4d8c-b7a6-5e4f3d2c1b0a",
    "number": "INV-2026-000042",
    "currency": "USD",
    "total": "61.25",
    "amount_due": "61.25",
    "period_start": "2026-10-01T09:30:00Z",
    "period_end": "2026-11-01T09:30:00Z",
    "subscription": "9e2f4c1a-3b5d-4e6f-8a7b-0c1d2e3f4a5b",
}

_TYPES = [
    EventType(
        "ping",
        "Sent by 'Send test event' to check an endpoint.",
        _object({"message": STRING}),
        examples=[{"message": "Hello from Tollgate."}],
    ),
    EventType(
        "key.created",
        "An API key was issued. The key itself is shown once to whoever created it and is "
        "never part of an event.",
        _object(
            {
                **KEY_FIELDS,
                "scopes": STRINGS,
                "allowed_cidrs": STRINGS,
                "expires_at": _nullable(DATETIME),
                "created_at": DATETIME,
            }
        ),
        examples=[
            {
                **KEY_EXAMPLE,
                "scopes": ["read", "write"],
                "allowed_cidrs": [],
                "expires_at": None,
                "created_at": "2026-11-02T14:03:11Z",
            }
        ],
    ),
    EventType(
        "key.rotated",
        "An API key was rotated: a successor was issued, and the old key keeps working "
        "until `grace_ends_at`.",
        _object(
            {
                **KEY_FIELDS,
                "new_key": _object({"id": ID, "prefix": STRING}),
                "grace_ends_at": DATETIME,
            }
        ),
        examples=[
            {
                **KEY_EXAMPLE,
                "new_key": {"id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d", "prefix": "tg_live_8Qm2"},
                "grace_ends_at": "2026-11-03T14:03:11Z",
            }
        ],
    ),
    EventType(
        "key.revoked",
        "An API key was revoked: the gate refuses it from the next call.",
        _object({**KEY_FIELDS, "revoked_at": DATETIME}),
        examples=[{**KEY_EXAMPLE, "revoked_at": "2026-11-05T08:00:00Z"}],
    ),
    EventType(
        "app.installed",
        "A marketplace app was installed through OAuth consent (or its grant was renewed "
        "with other scopes: `reinstalled` true). Sent to the installing organization and to "
        "the app's partner.",
        _object(
            {
                **INSTALL_FIELDS,
                "reinstalled": {"type": "boolean"},
                "installed_at": DATETIME,
            }
        ),
        examples=[
            {**INSTALL_EXAMPLE, "reinstalled": False, "installed_at": "2026-11-05T09:12:44Z"}
        ],
    ),
    EventType(
        "app.uninstalled",
        "A marketplace app was uninstalled: its tokens were revoked at once. Sent to the "
        "installing organization and to the app's partner.",
        _object({**INSTALL_FIELDS, "uninstalled_at": DATETIME}),
        examples=[{**INSTALL_EXAMPLE, "uninstalled_at": "2026-11-20T16:00:02Z"}],
    ),
    EventType(
        "usage.threshold_reached",
        "Usage of a meter or this period's bill reached an alert threshold (`source` "
        "`threshold`), or a soft quota of the plan was passed (`source` `soft_quota`: calls "
        "are still allowed). Sent once per threshold and billing period.",
        _object(
            {
                "alert": _described(ID, "The id of the alert, as listed by GET /api/v1/alerts."),
                "source": {"type": "string", "enum": ["threshold", "soft_quota"]},
                "kind": {"type": "string", "enum": ["usage", "spend"]},
                "threshold": _described(
                    _nullable(ID), "The alert threshold's id; null for a soft quota."
                ),
                "meter": _described(_nullable(STRING), "The meter's code; null for spend."),
                "value": _described(DECIMAL, "Usage (units) or spend (currency) reached."),
                "limit": DECIMAL,
                "currency": _described(_nullable(CURRENCY), "For spend alerts; else null."),
                "period_start": DATETIME,
                "fired_at": DATETIME,
            }
        ),
        examples=[
            {
                "alert": "2f1e0d9c-8b7a-4c6d-a5e4-f3d2c1b0a9f8",
                "source": "threshold",
                "kind": "usage",
                "threshold": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                "meter": "requests",
                "value": "1200",
                "limit": "1000",
                "currency": None,
                "period_start": "2026-11-01T09:30:00Z",
                "fired_at": "2026-11-08T10:15:00Z",
            },
            {
                "alert": "3a2b1c0d-9e8f-4a7b-b6c5-d4e3f2a1b0c9",
                "source": "soft_quota",
                "kind": "usage",
                "threshold": None,
                "meter": "requests",
                "value": "5000012",
                "limit": "5000000",
                "currency": None,
                "period_start": "2026-11-01T09:30:00Z",
                "fired_at": "2026-11-20T17:42:05Z",
            },
        ],
    ),
    EventType(
        "usage.anomaly_detected",
        "A day's live usage of a meter was far above the organization's own pattern of the "
        "previous 28 days (robust z-score over 3.5). The explanation also appears on the "
        "invoice line of that meter.",
        _object(
            {
                "anomaly": ID,
                "meter": STRING,
                "day": _described(DATE, "The UTC day assessed."),
                "observed": DECIMAL,
                "median": _described(DECIMAL, "Median daily usage of the days before."),
                "score": DECIMAL,
                "explanation": STRING,
                "detected_at": DATETIME,
            }
        ),
        examples=[
            {
                "anomaly": "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
                "meter": "requests",
                "day": "2026-11-03",
                "observed": "12400",
                "median": "1000",
                "score": "153.7860",
                "explanation": "Usage on 2026-11-03 was 12,400 requests, 12.4x the median of "
                "the previous 28 days (robust z-score 153.8).",
                "detected_at": "2026-11-04T01:00:12Z",
            }
        ],
    ),
    EventType(
        "quota.exhausted",
        "A hard quota of the plan is used up: live calls that count against it are refused "
        "(reason `quota_exhausted`) until the period ends at `period_end`, or until a bigger "
        "plan or a quota add-on raises it. Sent at the first refusal, once per meter and "
        "billing period.",
        _object(
            {
                "meter": STRING,
                "limit": _described(DECIMAL, "The quota, in units of the meter."),
                "used": _described(DECIMAL, "Units counted this period at the first refusal."),
                "period_start": DATETIME,
                "period_end": DATETIME,
                "exhausted_at": DATETIME,
            }
        ),
        examples=[
            {
                "meter": "requests",
                "limit": "10000",
                "used": "10000",
                "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z",
                "exhausted_at": "2026-11-18T06:12:44Z",
            }
        ],
    ),
    EventType(
        "subscription.created",
        "The organization subscribed to a plan.",
        _object({**SUBSCRIPTION_FIELDS, "coupon": _nullable(STRING)}),
        examples=[{**SUBSCRIPTION_EXAMPLE, "coupon": None}],
    ),
    EventType(
        "subscription.updated",
        "The subscription changed: `change` says how. `plan_changed` (now, prorated; "
        "`previous` is the plan before), `cancel_scheduled` (it ends at `effective_at`, the "
        "period's end), `addon_added` / `addon_removed` (`addon`), "
        "`migration_scheduled` (the provider moves "
        "it to a new version of its plan at `effective_at`; `plan` is still the current one).",
        {
            **_object(
                {
                    **SUBSCRIPTION_FIELDS,
                    "change": {"type": "string", "enum": SUBSCRIPTION_CHANGES},
                    "effective_at": DATETIME,
                    "previous": _described(
                        _nullable(PLAN_REFERENCE), "The plan before (null: none was running)."
                    ),
                    "addon": _object({"code": STRING, "quantity": {"type": "integer"}}),
                    "next": PLAN_REFERENCE,
                },
                required=[*SUBSCRIPTION_FIELDS, "change", "effective_at"],
            ),
            "allOf": [
                {
                    "if": {"properties": {"change": {"const": change}}},
                    "then": {"required": [extra]},
                }
                for change, extra in (
                    ("plan_changed", "previous"),
                    ("addon_added", "addon"),
                    ("addon_removed", "addon"),
                    ("migration_scheduled", "next"),
                )
            ],
        },
        examples=[
            {
                **SUBSCRIPTION_EXAMPLE,
                "plan": "business",
                "change": "plan_changed",
                "effective_at": "2026-11-12T16:20:00Z",
                "previous": {"plan": "pro", "plan_version": 1},
            },
            {
                **SUBSCRIPTION_EXAMPLE,
                "cancel_at_period_end": True,
                "change": "cancel_scheduled",
                "effective_at": "2026-12-01T09:30:00Z",
            },
        ],
    ),
    EventType(
        "invoice.finalized",
        "A period's invoice (or a pay-in-advance plan's opening invoice) was finalized: "
        "numbered, priced with all usage known, and now `open` for payment, or already "
        "`paid` when credits covered it (an `invoice.paid` follows then).",
        _object(
            {
                **INVOICE_FIELDS,
                "kind": {"type": "string", "enum": ["period", "opening"]},
                "status": {"type": "string", "enum": ["open", "paid"]},
                "plan": STRING,
                "plan_version": {"type": "integer", "minimum": 1},
                "subtotal": DECIMAL,
                "discount": DECIMAL,
                "credits": DECIMAL,
                "tax": DECIMAL,
                "issued_at": DATETIME,
                "due_at": DATETIME,
            }
        ),
        examples=[
            {
                **INVOICE_EXAMPLE,
                "kind": "period",
                "status": "open",
                "plan": "pro",
                "plan_version": 1,
                "subtotal": "61.25",
                "discount": "0.00",
                "credits": "0.00",
                "tax": "0.00",
                "issued_at": "2026-11-01T10:30:00Z",
                "due_at": "2026-11-15T10:30:00Z",
            }
        ],
    ),
    EventType(
        "invoice.paid",
        "An invoice was paid in full: by card, by a payment the provider recorded, or by "
        "credit when nothing was left to pay.",
        _object({**INVOICE_FIELDS, "amount_paid": DECIMAL, "paid_at": DATETIME}),
        examples=[
            {
                **INVOICE_EXAMPLE,
                "amount_due": "0.00",
                "amount_paid": "61.25",
                "paid_at": "2026-11-01T10:30:04Z",
            }
        ],
    ),
    EventType(
        "invoice.payment_failed",
        "A payment of an invoice failed. Another attempt follows at "
        "`next_payment_attempt_at`; when it is null the retries are over and the "
        "organization is past due (live keys are refused until it pays).",
        _object(
            {
                **INVOICE_FIELDS,
                "attempt": {"type": "integer", "minimum": 1},
                "failure_code": STRING,
                "failure_message": STRING,
                "next_payment_attempt_at": _nullable(DATETIME),
            }
        ),
        examples=[
            {
                **INVOICE_EXAMPLE,
                "attempt": 1,
                "failure_code": "card_declined",
                "failure_message": "Your card was declined.",
                "next_payment_attempt_at": "2026-11-02T10:30:04Z",
            }
        ],
    ),
]

CATALOG: dict[str, EventType] = {event.name: event for event in _TYPES}


def event_type_get(name: str) -> EventType | None:
    return CATALOG.get(name)


def event_types() -> list[EventType]:
    """Every type, by name."""
    return sorted(CATALOG.values(), key=lambda event_type: event_type.name)


def event_type_json(event_type: EventType) -> dict:
    """The shape of GET /api/v1/event-types (a copy: callers may not change the catalog)."""
    return {
        "name": event_type.name,
        "version": event_type.version,
        "description": event_type.description,
        "schema": {"$schema": JSON_SCHEMA_DIALECT, **deepcopy(event_type.schema)},
        "examples": deepcopy(event_type.examples),
    }


# --- Helpers for event data -----------------------------------------------------------------
def timestamp(moment: datetime | None) -> str | None:
    """A time as events carry it: RFC 3339 in UTC with `Z` (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- The envelope and validation ------------------------------------------------------------
def envelope_schema(event_type: EventType) -> dict:
    """The schema of the whole body sent for `event_type` (webhooks.services.emit builds it)."""
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^msg_[0-9a-f]{32}$"},
            "type": {"type": "string", "const": event_type.name},
            "version": {"type": "integer", "const": event_type.version},
            "created_at": DATETIME,
            "organization": ID,
            "environment": ENVIRONMENT,
            "data": deepcopy(event_type.schema),
        },
        "required": [
            "id",
            "type",
            "version",
            "created_at",
            "organization",
            "environment",
            "data",
        ],
        "additionalProperties": True,  # fields may be added; receivers ignore them
    }


def example_envelope(event_type: EventType, data: dict, environment: str = "live") -> dict:
    return {
        "id": "msg_2b7f0c1e9a8d4f6b8e3a5c7d9f1b3e5a",
        "type": event_type.name,
        "version": event_type.version,
        "created_at": "2026-11-08T10:15:00Z",
        "organization": ORGANIZATION,
        "environment": environment,
        "data": data,
    }


def _format_checker():
    """jsonschema's checker, with `date-time` checked without the optional rfc3339 package:
    RFC 3339 needs a date, a `T`, a time and an offset."""
    from jsonschema import FormatChecker

    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value) -> bool:
        if not isinstance(value, str):
            return True
        if "T" not in value.upper():
            raise ValueError("no time")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("no offset")
        return True

    return checker


def payload_errors(payload: dict) -> list[str]:
    """What is wrong with an event body by the catalog (empty when it is valid): the
    tests run every emitted event through this."""
    from jsonschema import Draft202012Validator

    event_type = event_type_get(payload.get("type", "")) if isinstance(payload, dict) else None
    if event_type is None:
        return [f"unknown event type {payload.get('type')!r}"]
    validator = Draft202012Validator(envelope_schema(event_type), format_checker=_format_checker())
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(body)'}: {error.message}"
        for error in validator.iter_errors(payload)
    ]


# --- AsyncAPI ---------------------------------------------------------------------------------
WEBHOOK_HEADERS = {
    "type": "object",
    "description": "Standard Webhooks headers (https://www.standardwebhooks.com/).",
    "properties": {
        "webhook-id": {
            "type": "string",
            "description": "The event id (`msg_...`), the same on every retry: deduplicate on it.",
        },
        "webhook-timestamp": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Seconds since the Unix epoch when this attempt was signed; reject "
            "messages more than a few minutes old.",
        },
        "webhook-signature": {
            "type": "string",
            "description": "Space-separated `v1,<base64 HMAC-SHA256 of "
            "'<webhook-id>.<webhook-timestamp>.<body>'>` with the endpoint's secret "
            "(`whsec_...`, base64 after the prefix); two signatures while a rotated secret "
            "overlaps the new one.",
        },
        "content-type": {"type": "string", "const": "application/json"},
    },
    "required": ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"],
}


def asyncapi_document(*, version: str = "1.0.0") -> dict:
    """The catalog as an AsyncAPI 3.0 document: one channel, message and send operation per
    event type; each message's payload is the whole body, `data` included."""
    channels, operations, messages = {}, {}, {}
    for event_type in event_types():
        name = event_type.name
        messages[name] = {
            "name": name,
            "title": f"{name} (version {event_type.version})",
            "summary": event_type.description,
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/WebhookHeaders"},
            "payload": envelope_schema(event_type),
            "examples": [
                {
                    "name": f"{name}-{position}",
                    "headers": {
                        "webhook-id": "msg_2b7f0c1e9a8d4f6b8e3a5c7d9f1b3e5a",
                        "webhook-timestamp": "1794132900",
                        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                        "content-type": "application/json",
                    },
                    "payload": example_envelope(event_type, example),
                }
                for position, example in enumerate(event_type.examples, start=1)
            ],
        }
        channels[name] = {
            # Deliveries go to each subscribed endpoint's own URL: no fixed address.
            "address": None,
            "title": name,
            "description": f"POSTed to every enabled webhook endpoint of the organization "
            f"(of the event's environment) that subscribes to {name}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"send.{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": event_type.description,
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Tollgate webhooks",
            "version": version,
            "description": "Events Tollgate POSTs to customers' webhook endpoints, signed per "
            "Standard Webhooks. Delivery is at least once, retried with backoff for days: "
            "deduplicate on `webhook-id` and answer 2xx quickly. The same catalog is at "
            "GET /api/v1/event-types.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {"WebhookHeaders": WEBHOOK_HEADERS}},
    }
