"""Who did it and from where, and the one function that writes the audit log.

Every service that changes state takes an `actor` and calls `audit_record` inside its own
transaction, so the change and its record commit (or roll back) together.
"""

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models

from common.request_id import current_request_id
from portal.models import ApiToken, AuditLogEntry, Organization, User

# Field names that must never be copied into an audit row, whatever a caller passes.
SECRET_FIELD_NAMES = frozenset(
    {"key", "secret", "token", "password", "key_hash", "token_hash", "raw", "raw_key"}
)


@dataclass(frozen=True)
class Actor:
    user: User | None = None
    token: ApiToken | None = None
    system_label: str | None = None
    ip_address: str | None = None
    user_agent: str = ""
    request_id: str = field(default_factory=lambda: current_request_id() or "")

    @classmethod
    def system(cls, label: str) -> "Actor":
        return cls(system_label=label)

    @classmethod
    def from_request(cls, request) -> "Actor":
        """From a Django or DRF request: a token actor if it carries one, else the user."""
        token = getattr(request, "auth", None)
        token = token if isinstance(token, ApiToken) else None
        user = getattr(request, "user", None)
        user = user if user is not None and user.is_authenticated else None
        return cls(
            user=user,
            token=token,
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
            request_id=getattr(request, "request_id", "") or current_request_id() or "",
        )

    @property
    def actor_type(self) -> str:
        if self.token is not None:
            return AuditLogEntry.ActorType.TOKEN
        if self.user is not None:
            return AuditLogEntry.ActorType.USER
        return AuditLogEntry.ActorType.SYSTEM

    @property
    def label(self) -> str:
        if self.token is not None:
            return f"token:{self.token.name} ({self.token.prefix})"
        if self.user is not None:
            return self.user.email
        return f"system:{self.system_label or 'tollgate'}"


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or the address the operator's trusted proxies put in X-Forwarded-For."""
    proxies = getattr(settings, "NUM_TRUSTED_PROXIES", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def _clean_changes(changes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value for name, value in changes.items() if name.lower() not in SECRET_FIELD_NAMES
    }


def audit_record(
    *,
    actor: Actor,
    action: str,
    organization: Organization | None,
    target: models.Model | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        organization=organization,
        actor_type=actor.actor_type,
        actor_user=actor.user,
        actor_token=actor.token,
        actor_label=actor.label[:255],
        action=action,
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:255] if target is not None else "",
        changes=_clean_changes(changes or {}),
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )
