"""Bearer-token authentication for the management API."""

import time
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from common.secrets import checksum_ok, hash_secret
from portal.models import ApiToken

LAST_USED_RESOLUTION = timedelta(seconds=60)
# Operator tokens sit on the gate's hot path (POST /api/v1/verify on every call of the
# provider's API), so each process remembers them this long; revoking one takes effect
# within this time. Org tokens are looked up on every request.
OPERATOR_TOKEN_CACHE_SECONDS = 5.0
_operator_tokens: dict[str, tuple[ApiToken, float]] = {}


def _lookup(token_hash: str) -> ApiToken | None:
    cached = _operator_tokens.get(token_hash)
    if cached is not None and time.monotonic() - cached[1] < OPERATOR_TOKEN_CACHE_SECONDS:
        return cached[0]
    token = (
        ApiToken.objects.select_related("organization", "created_by")
        .filter(token_hash=token_hash)
        .first()
    )
    if token is not None and token.kind == ApiToken.Kind.OPERATOR:
        if len(_operator_tokens) > 1000:
            _operator_tokens.clear()
        _operator_tokens[token_hash] = (token, time.monotonic())
    return token


class TokenRefused(Exception):
    """Why a bearer credential was refused; `code` is the problem code."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(detail)


_operator_headers: dict[str, tuple[ApiToken, float]] = {}


def authenticate_bearer(header: str) -> ApiToken:
    """The active token an `Authorization` header carries (shared by DRF and the gate's
    fast path); raises TokenRefused. A cached operator token skips parsing and hashing."""
    cached = _operator_headers.get(header)
    if cached is not None and time.monotonic() - cached[1] < OPERATOR_TOKEN_CACHE_SECONDS:
        token = cached[0]
        if token.is_active:
            return token
    if not header:
        raise TokenRefused("authentication_required", "Send 'Authorization: Bearer <token>'.")
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise TokenRefused("invalid_token", "Use 'Authorization: Bearer <token>'.")
    if not raw.startswith(("tg_org_", "tg_op_")) or not checksum_ok(raw):
        raise TokenRefused("invalid_token", "The token is malformed.")
    token = _lookup(hash_secret(raw))
    if token is None or not token.is_active:
        raise TokenRefused("invalid_token", "The token is unknown, revoked or expired.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now  # the cached copy too, so it writes once a minute
    if token.kind == ApiToken.Kind.OPERATOR:
        if len(_operator_headers) > 1000:
            _operator_headers.clear()
        _operator_headers[header] = (token, time.monotonic())
    return token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tg_org_...` or `tg_op_...`; request.auth is the ApiToken."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        try:
            token = authenticate_bearer(header)
        except TokenRefused as refused:
            raise exceptions.AuthenticationFailed(refused.detail) from refused
        return (token.created_by or AnonymousUser(), token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
