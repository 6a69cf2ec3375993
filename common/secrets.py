"""Generating, checksumming and hashing secrets (API keys, tokens, invitation links).

A secret is `<prefix><random base62><6-char base62 CRC32 checksum>`, the format GitHub
uses for its tokens: a typo fails the checksum without a database lookup, and secret
scanners can match the pattern. Only a SHA-256 hash is stored.
"""

import base64
import hashlib
import hmac
import secrets
import zlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_LENGTH = 6


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def _encode_base62(number: int, width: int) -> str:
    chars = []
    while number:
        number, remainder = divmod(number, 62)
        chars.append(BASE62[remainder])
    return "".join(reversed(chars)).rjust(width, "0")


def checksum(body: str) -> str:
    return _encode_base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def make_secret(prefix: str, random_length: int = 32) -> str:
    body = prefix + random_base62(random_length)
    return body + checksum(body)


def checksum_ok(secret: str) -> bool:
    if len(secret) <= CHECKSUM_LENGTH:
        return False
    body, check = secret[:-CHECKSUM_LENGTH], secret[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(checksum(body), check)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _cipher(purpose: str) -> Fernet:
    """A Fernet cipher whose key is derived from SECRET_KEY and the purpose, so a value
    sealed for one use cannot be opened as another."""
    derived = hmac.new(settings.SECRET_KEY.encode(), purpose.encode(), "sha256").digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(value: str, *, purpose: str) -> str:
    return _cipher(purpose).encrypt(value.encode()).decode()


def unseal(token: str, *, purpose: str) -> str | None:
    """The sealed value, or None when it cannot be opened (SECRET_KEY changed, tampering)."""
    try:
        return _cipher(purpose).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
