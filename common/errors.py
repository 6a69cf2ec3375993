"""One exception hierarchy with stable machine codes; services raise these, never HTTP.

The API layer (common.problems) turns them into RFC 9457 problem+json, the portal into
form errors or messages. A code, once published, never changes meaning.
"""

from typing import Any


class TollgateError(Exception):
    """Base of every expected, user-facing failure."""

    code = "error"
    status = 400
    title = "Request failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        **extra: Any,
    ):
        self.detail = detail or self.title
        if code:
            self.code = code
        self.field = field
        if field:
            extra.setdefault("errors", [{"field": field, "code": self.code, "detail": self.detail}])
        self.extra = extra
        super().__init__(self.detail)


class InvalidInput(TollgateError):
    code = "validation_error"
    status = 400
    title = "The request is not valid"


class NotFound(TollgateError):
    code = "not_found"
    status = 404
    title = "Not found"


class PermissionDenied(TollgateError):
    code = "permission_denied"
    status = 403
    title = "Permission denied"


class Conflict(TollgateError):
    code = "conflict"
    status = 409
    title = "Conflict with the current state"


class PayloadTooLarge(TollgateError):
    code = "payload_too_large"
    status = 413
    title = "Request too large"
