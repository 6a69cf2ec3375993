"""Scopes of management-API tokens: org tokens act for one org, operator tokens for the platform."""

ORG_SCOPES: tuple[str, ...] = (
    "projects:read",
    "projects:write",
    "keys:read",
    "keys:write",
    "usage:read",
    "billing:read",
    "billing:write",
    "invoices:read",
    "webhooks:read",
    "webhooks:write",
    "audit:read",
)
OPERATOR_SCOPES: tuple[str, ...] = ("gate:verify", "usage:write", "admin")


def scope_satisfied(granted: list[str] | tuple[str, ...], required: str) -> bool:
    """A `:write` scope implies the matching `:read`, as Stripe's restricted keys do, and
    the operator `admin` scope implies every other operator scope."""
    if required in granted:
        return True
    if required in OPERATOR_SCOPES and "admin" in granted:
        return True
    resource, _, action = required.partition(":")
    return action == "read" and f"{resource}:write" in granted
