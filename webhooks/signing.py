"""Standard Webhooks signatures (https://www.standardwebhooks.com/):

webhook-id: msg_...               (the event id; the same on every retry and replay)
webhook-timestamp: 1732550400      (seconds, per attempt)
webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">  (space-separated,
                                   one per secret in force during a rotation)
"""

import base64
import hashlib
import hmac

from webhooks.secrets import key_bytes


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
        "content-type": "application/json",
    }
