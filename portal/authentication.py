"""Bearer-token authentication for the management API."""

from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from common.secrets import checksum_ok, hash_secret
from portal.models import ApiToken

LAST_USED_RESOLUTION = timedelta(seconds=60)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tg_org_...` or `tg_op_...`; request.auth is the ApiToken."""

    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        raw = raw.strip()
        if not raw.startswith(("tg_org_", "tg_op_")) or not checksum_ok(raw):
            raise exceptions.AuthenticationFailed("The token is malformed.")
        token = (
            ApiToken.objects.select_related("organization", "created_by")
            .filter(token_hash=hash_secret(raw))
            .first()
        )
        if token is None or not token.is_active:
            raise exceptions.AuthenticationFailed("The token is unknown, revoked or expired.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return (token.created_by or AnonymousUser(), token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
