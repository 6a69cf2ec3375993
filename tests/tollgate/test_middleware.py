"""The Python middleware against a real Tollgate server (pytest-django's live server)."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from billing.defaults import ensure_default_meters
from billing.demo_catalog import ensure_demo_catalog
from billing.models import Meter
from keys.services import api_version_create
from portal.audit import Actor
from tests.factories import ApiKeyFactory, ApiTokenFactory, OrganizationFactory, ProjectFactory
from tests.keys.test_products import DOCUMENT
from tollgate.client import GateClient
from tollgate.middleware import TollgateASGIMiddleware, TollgateMiddleware

SYSTEM = Actor.system("test")


@pytest.fixture
def tollgate(transactional_db, live_server):
    ensure_default_meters(Meter)
    ensure_demo_catalog(actor=SYSTEM)
    api_version_create(actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT)
    token = ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])
    key = ApiKeyFactory(project=ProjectFactory(organization=OrganizationFactory()), scopes=["read"])
    return GateClient(live_server.url, token.raw_token), key


def view(request):
    return HttpResponse(
        json.dumps({"customer": request.tollgate["customer"]}), content_type="application/json"
    )


def django_call(client, path, **headers):
    middleware = TollgateMiddleware(view, client=client)
    return middleware(RequestFactory().get(path, **headers))


def test_an_allowed_call_reaches_the_view_with_the_decision(tollgate):
    client, key = tollgate
    response = django_call(client, "/v1/documents/1", HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    assert response.status_code == 200
    assert json.loads(response.content)["customer"] == key.organization.slug
    assert response["RateLimit-Policy"] == "5;w=1, 100;w=60"
    assert response["RateLimit"].startswith("limit=5")


def test_the_key_may_come_in_x_api_key(tollgate):
    client, key = tollgate
    assert django_call(client, "/v1/documents/1", HTTP_X_API_KEY=key.raw_key).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/v1/documents/1", {}, 401, "key_missing"),
        ("/v1/documents/1", {"HTTP_AUTHORIZATION": "Bearer tg_live_nope"}, 401, "key_malformed"),
        ("/v1/unknown", None, 404, "endpoint_unknown"),
    ],
)
def test_refusals_are_problems_with_the_gates_code(tollgate, path, headers, status, code):
    client, key = tollgate
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key.raw_key}"} if headers is None else headers
    response = django_call(client, path, **headers)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    assert json.loads(response.content)["code"] == code


def test_rate_limited_calls_get_429_with_retry_after(tollgate, settings):
    settings.GATE_DRAIN_INLINE = False  # keep calls fast enough to outrun 5 per second
    client, key = tollgate
    authorization = f"Bearer {key.raw_key}"
    responses = [
        django_call(client, "/v1/documents/1", HTTP_AUTHORIZATION=authorization) for _ in range(12)
    ]
    limited = [response for response in responses if response.status_code == 429]
    assert limited, [response.status_code for response in responses]
    assert json.loads(limited[0].content)["code"] == "rate_limited"
    assert int(limited[0]["Retry-After"]) >= 1


def test_an_unreachable_gate_fails_closed_unless_told_otherwise(db):
    dead = GateClient("http://127.0.0.1:9", "tg_op_x", timeout=0.5)
    response = django_call(dead, "/v1/documents/1", HTTP_AUTHORIZATION="Bearer tg_live_x")
    assert response.status_code == 503
    assert json.loads(response.content)["code"] == "gate_unavailable"
    open_middleware = TollgateMiddleware(lambda request: HttpResponse("served"), client=dead)
    open_middleware.fail_open = True
    request = RequestFactory().get("/v1/x", HTTP_AUTHORIZATION="Bearer something")
    assert open_middleware(request).content == b"served"


def test_the_asgi_middleware_lets_allowed_calls_through(tollgate):
    client, key = tollgate
    seen = {}

    async def app(scope, receive, send):
        seen["decision"] = scope["state"]["tollgate"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = TollgateASGIMiddleware(app, url="http://unused", token="x", client=client)
    messages = []

    async def send(message):
        messages.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    def run(headers):
        messages.clear()
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v1/documents/1",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
        }
        # In a thread of its own: Playwright's browser tests leave a loop in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, middleware(scope, receive, send)).result()
        return messages[0]["status"], dict(messages[0]["headers"])

    status, headers = run([(b"authorization", f"Bearer {key.raw_key}".encode())])
    assert status == 200 and seen["decision"]["allowed"]
    assert headers[b"ratelimit-policy"] == b"5;w=1, 100;w=60"
    status, _headers = run([])
    assert status == 401
