"""Idempotency-Key for API POSTs: the first response is stored and replayed for 24 hours.

Implemented as middleware so every POST endpoint gets it without opting in, the way
Stripe does; the same key with a different body is refused with 422.

A stored response can hold a secret shown once (a new API key), so it is encrypted with a
key derived from the caller's own credential, which Tollgate keeps only as a hash: a copy
of the database, even with SECRET_KEY, cannot read it back.
"""

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from common.middleware import is_api_request
from common.models import IdempotencyRecord
from common.problems import problem_response

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _body_cipher(authorization: str) -> Fernet:
    derived = hmac.new(
        settings.SECRET_KEY.encode(), b"idempotency-body:" + authorization.encode(), "sha256"
    ).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def purge_expired_records(*, now=None) -> int:
    """Deletes stored responses older than the replay window; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get(HEADER)
        if request.method != "POST" or key is None or not is_api_request(request):
            return self.get_response(request)
        authorization = request.headers.get("Authorization", "")
        if not authorization:
            # Without a credential there is nothing to scope the key to; the view answers 401.
            return self.get_response(request)
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return problem_response(
                status=400,
                code="idempotency_key_invalid",
                title="Invalid Idempotency-Key",
                detail=f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            )

        scope_hash = _sha256(authorization.encode())
        fingerprint = _sha256(request.method.encode() + request.path.encode() + request.body)
        record, replay = self._claim(scope_hash, key, fingerprint, request, authorization)
        if replay is not None:
            return replay

        try:
            response = self.get_response(request)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500 or response.status_code == 401 or response.streaming:
            # Not a result the client should be stuck with: let a retry run again.
            record.delete()
            return response
        record.status_code = response.status_code
        record.content_type = response.get("Content-Type", "")
        record.response_body = _body_cipher(authorization).encrypt(response.content)
        record.completed_at = timezone.now()
        record.save(update_fields=["status_code", "content_type", "response_body", "completed_at"])
        return response

    def _claim(
        self,
        scope_hash: str,
        key: str,
        fingerprint: str,
        request: HttpRequest,
        authorization: str,
    ) -> tuple[IdempotencyRecord | None, HttpResponse | None]:
        cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
        for _attempt in range(2):
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        scope_hash=scope_hash,
                        key=key,
                        request_fingerprint=fingerprint,
                        method=request.method,
                        path=request.path[:2048],
                    )
                return record, None
            except IntegrityError:
                existing = IdempotencyRecord.objects.filter(scope_hash=scope_hash, key=key).first()
                if existing is None:
                    continue
                if existing.created_at < cutoff:
                    existing.delete()
                    continue
                return None, self._answer_existing(existing, fingerprint, authorization)
        return None, problem_response(
            status=409,
            code="idempotency_key_in_use",
            title="Idempotency-Key in use",
            detail="A request with this Idempotency-Key is still being processed; retry later.",
        )

    def _answer_existing(
        self, record: IdempotencyRecord, fingerprint: str, authorization: str
    ) -> HttpResponse:
        if record.request_fingerprint != fingerprint:
            return problem_response(
                status=422,
                code="idempotency_key_reused",
                title="Idempotency-Key reused",
                detail="This Idempotency-Key was used with a different request body or path.",
            )
        if record.status_code is None:
            return problem_response(
                status=409,
                code="idempotency_key_in_use",
                title="Idempotency-Key in use",
                detail="A request with this Idempotency-Key is still being processed; retry later.",
            )
        response = HttpResponse(
            _body_cipher(authorization).decrypt(bytes(record.response_body)),
            status=record.status_code,
            content_type=record.content_type or "application/json",
        )
        response["Idempotent-Replayed"] = "true"
        return response
