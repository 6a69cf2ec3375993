"""Standard Webhooks signatures, checked against the `standardwebhooks` library."""

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks import secrets, signing


def test_signature_equals_the_reference_implementation():
    secret = secrets.new_secret()
    body = b'{"id":"msg_1","data":{"message":"hi \\u00e9"}}'
    timestamp = 1_732_550_400

    ours = signing.signature(secret, "msg_1", timestamp, body)

    reference = Webhook(secret).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), body.decode())
    assert ours == reference
    version, digest = ours.split(",")
    assert version == "v1" and len(base64.b64decode(digest)) == 32


def test_secrets_are_whsec_base64_of_32_bytes():
    secret = secrets.new_secret()
    assert secret.startswith("whsec_")
    assert len(secrets.key_bytes(secret)) == 32
    assert secrets.decrypt(secrets.encrypt(secret)) == secret


def test_headers_verify_with_either_secret_during_rotation():
    import time

    old, new = secrets.new_secret(), secrets.new_secret()
    body = b'{"ok":true}'
    headers = signing.headers([new, old], "msg_2", int(time.time()), body)

    assert Webhook(old).verify(body, headers) == {"ok": True}
    assert Webhook(new).verify(body, headers) == {"ok": True}
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(b'{"ok":false}', headers)
