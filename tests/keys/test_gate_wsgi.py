"""The fast path for POST /api/v1/verify answers exactly what the Django view answers."""

import io
import json

import pytest

from config.wsgi import application
from tests.conftest import bearer_client
from tests.factories import ApiKeyFactory, ApiTokenFactory, ProjectFactory


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    """As Django's test client does: the test's transaction must outlive the request, so
    the per-request closing of old connections is switched off."""
    from django.core import signals
    from django.db import close_old_connections

    monkeypatch.setattr("keys.gate_wsgi.close_old_connections", lambda: None)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def call_wsgi(
    body,
    *,
    token=None,
    content_type="application/json",
    path="/api/v1/verify",
    method="POST",
    extra=None,
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(raw)),
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
        **(extra or {}),
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    captured = {}

    def start_response(status, headers):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(headers)

    content = b"".join(application(environ, start_response))
    return captured["status"], captured["headers"], json.loads(content)


@pytest.fixture
def gate_token(gate):
    return ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])


@pytest.fixture
def live_key(org):
    return ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="test", scopes=["read"]
    )


def comparable(body):
    return {k: v for k, v in body.items() if k not in ("request_id", "ratelimit")}


CASES = [
    ("allowed", lambda key: {"key": key.raw_key, "method": "GET", "path": "/v1/documents/1"}),
    ("scope", lambda key: {"key": key.raw_key, "method": "POST", "path": "/v1/documents"}),
    ("unknown endpoint", lambda key: {"key": key.raw_key, "method": "GET", "path": "/nope"}),
    ("malformed key", lambda key: {"key": "tg_live_x", "method": "GET", "path": "/v1/x"}),
    ("bad method", lambda key: {"key": key.raw_key, "method": "FETCH", "path": "/v1/x"}),
    ("bad cost", lambda key: {"key": key.raw_key, "method": "GET", "path": "/v1", "cost": 0}),
    ("not an object", lambda key: [1, 2]),
]


@pytest.mark.parametrize(("name", "make_body"), CASES, ids=[case[0] for case in CASES])
def test_fast_path_and_django_view_agree(gate_token, live_key, name, make_body):
    body = make_body(live_key)
    fast_status, fast_headers, fast_body = call_wsgi(body, token=gate_token.raw_token)
    django = bearer_client(gate_token).post(
        "/api/v1/verify", body, format="json", HTTP_IDEMPOTENCY_KEY=f"compare-{name}"
    )
    assert fast_status == django.status_code
    assert comparable(fast_body) == comparable(django.json())
    assert fast_headers["Content-Type"] == django["Content-Type"]
    assert fast_headers["X-Request-Id"] == fast_body["request_id"]
    for header in ("RateLimit-Policy", "Deprecation", "Sunset"):
        assert (header in fast_headers) == django.has_header(header)


@pytest.mark.parametrize(
    ("token", "scopes", "status", "code"),
    [
        (None, None, 401, "authentication_required"),
        ("tg_op_garbage", None, 401, "invalid_token"),
        ("org", ["keys:read"], 403, "wrong_token_kind"),
        ("operator", ["usage:write"], 403, "insufficient_scope"),
    ],
)
def test_fast_path_refuses_bad_credentials_like_the_api(gate, org, token, scopes, status, code):
    if token in ("org", "operator"):
        token = ApiTokenFactory(
            kind=token, organization=org if token == "org" else None, scopes=scopes
        ).raw_token
    got_status, headers, body = call_wsgi({"key": "x", "method": "GET", "path": "/"}, token=token)
    assert (got_status, body["code"]) == (status, code)
    assert headers["Content-Type"] == "application/problem+json"
    if status == 401:
        assert headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_fast_path_refuses_bad_bodies_with_problems(gate_token):
    status, _headers, body = call_wsgi(b"{nope", token=gate_token.raw_token)
    assert (status, body["code"]) == (400, "malformed_request")
    status, _headers, body = call_wsgi(
        b"k=v", token=gate_token.raw_token, content_type="application/x-www-form-urlencoded"
    )
    assert (status, body["code"]) == (415, "unsupported_media_type")
    status, _headers, body = call_wsgi(
        b"{}", token=gate_token.raw_token, extra={"CONTENT_LENGTH": str(10**7)}
    )
    assert (status, body["code"]) == (413, "payload_too_large")


def test_other_requests_reach_django(db):
    status, headers, body = call_wsgi(b"", method="GET", path="/api/v1/health")
    assert status == 200 and body["status"] in ("ok", "degraded")
    assert "X-Request-Id" in headers
