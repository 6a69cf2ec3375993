"""The current request id, readable from anywhere (logs, problems, audit) via a contextvar."""

import re
import uuid
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Accept a caller's id (e.g. from a load balancer) only if it is short and harmless in logs.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def accept_or_create(incoming: str | None) -> str:
    if incoming and _SAFE_REQUEST_ID.match(incoming):
        return incoming
    return new_request_id()


def current_request_id() -> str | None:
    return _request_id.get()


def set_current_request_id(value: str | None):
    return _request_id.set(value)


def reset_current_request_id(token) -> None:
    _request_id.reset(token)
