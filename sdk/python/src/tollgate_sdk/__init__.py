"""Python client for the Tollgate management API: typed resources, retries, idempotency."""

__version__ = "1.0.0"

from tollgate_sdk.client import AsyncTollgate, Tollgate
from tollgate_sdk.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TollgateError,
    UnprocessableError,
)
from tollgate_sdk.pagination import Page

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncTollgate",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "Tollgate",
    "TollgateError",
    "UnprocessableError",
    "__version__",
]
