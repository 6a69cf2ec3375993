"""Endpoint secrets: `whsec_` + base64 of 32 random bytes (Standard Webhooks), stored
encrypted with a key derived from SECRET_KEY, because signing needs the secret itself."""

import base64
import hashlib
import hmac
import secrets as random

from cryptography.fernet import Fernet
from django.conf import settings

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode()


def _cipher() -> Fernet:
    derived = hmac.new(settings.SECRET_KEY.encode(), b"webhook-endpoint-secret", "sha256")
    return Fernet(base64.urlsafe_b64encode(derived.digest()))


def encrypt(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _cipher().decrypt(token.encode()).decode()


def key_bytes(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part after `whsec_`."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def fingerprint(secret: str) -> str:
    """A short, non-secret label for logs and the portal."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]
