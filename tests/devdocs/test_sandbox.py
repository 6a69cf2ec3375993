"""The sandbox mock server: the real gate (PostgreSQL, Redis), then the OpenAPI document."""

import copy
import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache
from django.test import Client
from django.utils import timezone

from billing.demo_catalog import ensure_demo_catalog
from billing.models import Plan, UsageEvent
from billing.subscriptions import subscription_subscribe
from keys.format import key_generate
from keys.gate import VerifyInput
from keys.gate_api import process_gate
from keys.services import api_version_create, key_create
from keys.tasks import drain_gate_usage
from portal.audit import Actor
from tests.factories import ProjectFactory
from tests.keys.conftest import on_hourly_limit

SYSTEM = Actor.system("test")
DOCUMENTS_API = json.loads(
    (Path(django_settings.BASE_DIR) / "docs" / "examples" / "documents_api.json").read_text()
)
DOC_ID = "6f1c2a9e-3b4d-4e8f-9a0b-1c2d3e4f5a6b"
BASE = "/sandbox/documents/v1"


# --- Fixtures ------------------------------------------------------------------------------
@pytest.fixture
def sandbox_gate(db, meters, settings):
    """Demo plans, the Documents API as documents v1, and the process's own gate with its
    caches made immediate (tests change plans and look at once)."""
    settings.GATE_DRAIN_INLINE = False
    django_cache.clear()
    ensure_demo_catalog(actor=SYSTEM)
    api_version_create(actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENTS_API)
    gate = process_gate()
    gate.catalog._refresh_seconds = 0
    gate.entitlements._seconds = 0
    return gate


@pytest.fixture
def project(org, sandbox_gate):
    return ProjectFactory(organization=org)


def make_key(project, environment="test", scopes=("read", "write", "bulk")):
    _key, raw = key_create(
        actor=SYSTEM, project=project, name="sandbox", environment=environment, scopes=list(scopes)
    )
    return raw


@pytest.fixture
def key(project):
    return make_key(project)


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)  # the sandbox must not need a CSRF token


def on_plan(org, code, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # drops the cached entitlements
        subscription_subscribe(actor=SYSTEM, organization=org, plan=Plan.objects.get(code=code))


@pytest.fixture
def pro(org, project, django_capture_on_commit_callbacks):
    on_plan(org, "pro", django_capture_on_commit_callbacks)


def send(client, key, method="GET", path=f"/documents/{DOC_ID}", body=None, base=BASE, **headers):
    """`HTTP_PREFER="code=404"` or `X_TENANT="t-1"`: both become request headers."""
    extra = {
        name
        if name.startswith("HTTP_") or name == "CONTENT_TYPE"
        else f"HTTP_{name.upper()}": value
        for name, value in headers.items()
    }
    if key is not None:
        extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    content_type = extra.pop("CONTENT_TYPE", "application/json")
    data = json.dumps(body) if isinstance(body, dict | list) else (body or "")
    return client.generic(method, base + path, data=data, content_type=content_type, **extra)


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response["X-Request-Id"]
    assert response["X-Tollgate-Sandbox"] == "true"
    return body


def upload(product, document, version="v1"):
    return api_version_create(
        actor=SYSTEM, product_code=product, version=version, document=document
    )


# --- Through the gate ----------------------------------------------------------------------
def test_an_allowed_call_answers_the_documented_example_with_rate_limit_headers(client, key):
    response = send(client, key)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    example = DOCUMENTS_API["paths"]["/documents/{document_id}"]["get"]["responses"]["200"]
    assert response.json() == example["content"]["application/json"]["example"]
    assert response["RateLimit-Policy"] == "5;w=1, 100;w=60"  # Free
    assert response["RateLimit"].startswith("limit=5, remaining=4, reset=")
    assert response["X-Tollgate-Sandbox"] == "true"
    assert response["X-Request-Id"].startswith("req_")
    assert "Deprecation" not in response


def test_the_key_is_taken_from_x_api_key_as_well(client, key):
    response = client.get(f"{BASE}/documents/{DOC_ID}", HTTP_X_API_KEY=key)
    assert response.status_code == 200
    assert response.json()["id"] == DOC_ID


def test_allowed_calls_are_metered_as_test_usage(client, key, org):
    response = send(client, key, path="/documents")
    assert response.status_code == 200
    drain_gate_usage()
    row = UsageEvent.objects.get(organization_id=org.id, event_id=response["X-Request-Id"])
    assert (row.meter.code, row.source, row.environment) == ("requests", "gate", "test")
    assert row.quantity == 1


def test_a_live_key_is_refused_and_neither_metered_nor_rate_limited(client, project, org):
    live = make_key(project, environment="live")
    for _ in range(7):  # more than Free's 5 per second
        response = send(client, live)
        assert_problem(response, 403, "sandbox_requires_test_key")
        assert "RateLimit" not in response
    drain_gate_usage()
    assert not UsageEvent.objects.filter(organization_id=org.id).exists()
    # The live key's own limit is untouched: the gate still has all 5 for it.
    decision = process_gate().decide(
        VerifyInput(key=live, method="GET", path=f"/v1/documents/{DOC_ID}", product="documents")
    )
    assert decision.allowed and decision.ratelimit.binding.remaining == 4


def test_key_problems_answer_401_with_the_gates_codes(client, key):
    missing = client.get(f"{BASE}/documents/{DOC_ID}")
    assert_problem(missing, 401, "key_missing")
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert_problem(send(client, "not-a-key"), 401, "key_malformed")
    assert_problem(send(client, "tg_test_" + "a" * 38), 401, "key_malformed")  # bad checksum
    assert_problem(send(client, key_generate("test")), 401, "key_invalid")
    assert_problem(send(client, None, HTTP_AUTHORIZATION="Bearer "), 401, "key_missing")


def test_a_key_without_the_operations_scope_is_refused(client, project, pro):
    read_only = make_key(project, scopes=["read"])
    response = send(client, read_only, "POST", "/documents", {"title": "Hello"})
    body = assert_problem(response, 403, "scope_missing")
    assert body["group"] == "write"


def test_a_group_outside_the_plan_is_refused(client, key):
    body = {"documents": [{"title": "A"}]}
    response = send(client, key, "POST", "/documents/bulk", body)  # Free: read only
    assert_problem(response, 403, "endpoint_not_in_plan")


def test_rate_limit_exceeded_answers_429_with_retry_after(client, key, org):
    on_hourly_limit(org)
    statuses = [send(client, key).status_code for _ in range(5)]
    assert statuses == [200] * 5
    response = send(client, key)
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert response["RateLimit"].startswith("limit=5, remaining=0")
    assert response["RateLimit-Policy"] == "5;w=3600"


def test_an_unknown_path_is_the_gates_endpoint_unknown(client, key):
    response = send(client, key, path="/nothing/here")
    body = assert_problem(response, 404, "endpoint_unknown")
    assert "/v1/nothing/here" in body["detail"]
    # matched with the version's base path, exactly as live: sending it twice is not a match
    assert_problem(send(client, key, path=f"/v1/documents/{DOC_ID}"), 404, "endpoint_unknown")


def test_an_unknown_product_or_version_is_404_and_costs_no_rate_limit(client, key):
    for base in ("/sandbox/nothing/v1", "/sandbox/documents/v9", "/sandbox/documents"):
        assert_problem(send(client, key, base=base), 404, "sandbox_not_found")
    assert_problem(client.get("/sandbox/"), 404, "sandbox_not_found")
    statuses = [send(client, key).status_code for _ in range(5)]
    assert statuses == [200] * 5  # none of Free's 5 per second went to the typos


def test_a_deprecated_endpoint_carries_deprecation_and_sunset(client, key):
    response = send(client, key, path=f"/documents/{DOC_ID}/render")
    assert response.status_code == 200
    assert response["Deprecation"] == "true"
    assert response["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert response["Content-Type"] == "text/html"
    assert response.content.decode().startswith("<h1>Quarterly report</h1>")


def test_a_sunset_endpoint_answers_410(client, key):
    from keys.models import Endpoint

    Endpoint.objects.filter(operation_id="renderDocument").update(
        sunset_at=timezone.now() - timezone.timedelta(days=1)
    )
    response = send(client, key, path=f"/documents/{DOC_ID}/render")
    assert_problem(response, 410, "endpoint_sunset")
    assert response["Sunset"].endswith("GMT")


def test_sandbox_answers_any_method_without_csrf_or_session(client, key, pro):
    created = send(client, key, "POST", "/documents", {"title": "Quarterly report"})
    assert created.status_code == 201
    assert created["Location"].endswith(f"/v1/documents/{DOC_ID}")  # the documented header
    assert created.json()["status"] == "draft"
    updated = send(client, key, "PATCH", f"/documents/{DOC_ID}", {"status": "published"})
    assert updated.status_code == 200 and updated.json()["status"] == "published"
    assert "sessionid" not in created.cookies and "csrftoken" not in created.cookies


# --- Validating the request ----------------------------------------------------------------
def test_an_invalid_body_answers_422_with_each_violation_and_its_path(client, key, pro):
    response = send(
        client, key, "POST", "/documents", {"title": "", "tags": ["ok", "Not OK"], "extra": 1}
    )
    body = assert_problem(response, 422, "request_invalid")
    found = {(error["field"], error["code"]) for error in body["errors"]}
    assert ("$.title", "minLength") in found
    assert ("$.tags[1]", "pattern") in found
    assert ("$", "additionalProperties") in found
    assert all(error["location"] == "body" for error in body["errors"])
    assert all(error["detail"] for error in body["errors"])


def test_a_nested_violation_names_its_json_path(
    client, project, org, django_capture_on_commit_callbacks
):
    on_plan(org, "pro", django_capture_on_commit_callbacks)
    key = make_key(project)
    response = send(client, key, "POST", "/documents/bulk", {"documents": [{"title": "A"}, {}]})
    body = assert_problem(response, 422, "request_invalid")
    assert body["errors"][0]["field"] == "$.documents[1]"
    assert "'title' is a required property" in body["errors"][0]["detail"]


def test_a_missing_required_body_is_invalid(client, key, pro):
    body = assert_problem(send(client, key, "POST", "/documents"), 422, "request_invalid")
    assert body["errors"][0]["field"] == "$" and body["errors"][0]["code"] == "required"


def test_malformed_json_answers_400(client, key, pro):
    response = send(client, key, "POST", "/documents", '{"title": ')
    body = assert_problem(response, 400, "malformed_request")
    assert "not valid JSON" in body["detail"]
    response = send(client, key, "POST", "/documents", "[" * 100_000 + "]" * 100_000)
    assert_problem(response, 400, "malformed_request")
    response = send(client, key, "POST", "/documents", b'{"title": "\xff"}')
    assert_problem(response, 400, "malformed_request")


def test_a_body_of_the_wrong_content_type_answers_415(client, key, pro):
    response = send(
        client,
        key,
        "POST",
        "/documents",
        "title=x",
        CONTENT_TYPE="application/x-www-form-urlencoded",
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert body["accepted"] == ["application/json"]
    assert "Content-Type: application/json" in body["detail"]
    charset = send(
        client,
        key,
        "POST",
        "/documents",
        json.dumps({"title": "Hi"}),
        CONTENT_TYPE="application/json; charset=utf-8",
    )
    assert charset.status_code == 201


def test_a_path_parameter_that_is_not_a_uuid_is_a_clear_problem(client, key):
    body = assert_problem(send(client, key, path="/documents/42"), 422, "request_invalid")
    assert body["errors"] == [
        {
            "location": "path",
            "field": "document_id",
            "code": "format",
            "detail": "'42' is not a 'uuid'",
        }
    ]
    assert body["detail"] == "path document_id: '42' is not a 'uuid'"


def test_query_parameters_are_coerced_and_checked(client, key):
    assert send(client, key, path="/documents?limit=20&status=published").status_code == 200
    body = assert_problem(send(client, key, path="/documents?limit=0"), 422, "request_invalid")
    assert (body["errors"][0]["field"], body["errors"][0]["code"]) == ("limit", "minimum")
    body = assert_problem(send(client, key, path="/documents?limit=ten"), 422, "request_invalid")
    assert body["errors"][0]["detail"] == "'ten' is not of type 'integer'"
    body = assert_problem(send(client, key, path="/documents?status=gone"), 422, "request_invalid")
    assert body["errors"][0]["field"] == "status"


SEARCH_API = {
    "openapi": "3.1.0",
    "info": {"title": "Search API", "version": "1"},
    "servers": [{"url": "/api"}],
    "paths": {
        "/search": {
            "get": {
                "operationId": "search",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "tags",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                    },
                    {"name": "exact", "in": "query", "schema": {"type": "boolean"}},
                    {
                        "name": "X-Tenant",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^t-"},
                    },
                ],
                "responses": {"200": {"description": "Hits.", "content": {"application/json": {}}}},
            },
            "head": {
                "operationId": "searchHead",
                "responses": {
                    "200": {
                        "description": "Exists.",
                        "content": {"application/json": {"example": {"hits": 3}}},
                    }
                },
            },
        }
    },
}


def test_required_query_and_header_parameters(client, key):
    upload("search", SEARCH_API)
    base = "/sandbox/search/v1"
    body = assert_problem(send(client, key, path="/search", base=base), 422, "request_invalid")
    assert {(error["location"], error["field"]) for error in body["errors"]} == {
        ("query", "q"),
        ("header", "X-Tenant"),
    }
    ok = send(client, key, path="/search?q=a&tags=1&tags=2&exact=true", base=base, X_TENANT="t-1")
    assert ok.status_code == 200 and ok.json() == {}  # JSON media without a schema: {}
    body = assert_problem(
        send(client, key, path="/search?q=a&tags=1,x,3,4&exact=maybe", base=base, X_TENANT="u"),
        422,
        "request_invalid",
    )
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"tags[1]", "tags", "exact", "X-Tenant"}


# --- Choosing the response -----------------------------------------------------------------
def test_prefer_code_answers_that_documented_response(client, key):
    response = send(client, key, HTTP_PREFER="code=404")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    not_found = DOCUMENTS_API["components"]["responses"]["NotFound"]["content"]
    assert response.json() == not_found["application/problem+json"]["example"]
    assert response["Preference-Applied"] == "code=404"
    assert response["RateLimit"].startswith("limit=5")


def test_prefer_code_429_carries_the_documented_retry_after_but_the_gates_rate_limit(client, key):
    response = send(client, key, path="/documents", HTTP_PREFER="code=429")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"  # the document's example
    assert response["Retry-After"] == "17"
    assert response["RateLimit"].startswith("limit=5, remaining=4")  # the gate's, not "100"


def test_prefer_an_undocumented_code_is_a_400(client, key):
    body = assert_problem(
        send(client, key, HTTP_PREFER="code=418"), 400, "prefer_code_undocumented"
    )
    assert body["documented"] == ["200", "401", "404", "429"]
    assert_problem(send(client, key, HTTP_PREFER="code=abc"), 400, "prefer_invalid")


def test_prefer_example_picks_a_named_example(client, key):
    response = send(client, key, path="/documents", HTTP_PREFER="example=lastPage")
    assert response.json() == {"data": [], "next_cursor": None}
    assert response["Preference-Applied"] == "example=lastPage"
    first_page = send(client, key, path="/documents", HTTP_PREFER="example=firstPage")
    assert first_page.json()["next_cursor"] == "eyJpZCI6IjBiN2U0ZjJhIn0"
    # Without a preference, one of the documented examples (PostgreSQL's jsonb does not keep
    # the document's key order, so "the first" is the stored order).
    default = send(client, key, path="/documents").json()
    assert default in ({"data": [], "next_cursor": None}, first_page.json())
    body = assert_problem(
        send(client, key, path="/documents", HTTP_PREFER="example=nope"),
        400,
        "prefer_example_unknown",
    )
    assert body["examples"] == ["firstPage", "lastPage"]


def test_a_request_is_validated_before_a_preferred_response(client, key):
    assert_problem(
        send(client, key, path="/documents/42", HTTP_PREFER="code=404"), 422, "request_invalid"
    )


def test_delete_answers_204_without_a_body(client, key, pro):
    response = send(client, key, "DELETE", f"/documents/{DOC_ID}")
    assert response.status_code == 204
    assert response.content == b""
    assert response["RateLimit"].startswith("limit=50")  # Pro


def test_head_answers_headers_only(key):
    from django.test import RequestFactory

    from devdocs.sandbox_views import sandbox

    upload("search", SEARCH_API)
    # The view itself, not the test client: the client drops HEAD bodies on its own.
    factory = RequestFactory()
    request = factory.head("/sandbox/search/v1/search", HTTP_X_API_KEY=key)
    response = sandbox(request, product="search", version="v1", rest="search")
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Type"] == "application/json"
    assert response["RateLimit"].startswith("limit=5")
    # As in live, HEAD matches HEAD operations only: a GET-only path is unknown (no body).
    request = factory.head(f"{BASE}/documents/{DOC_ID}", HTTP_X_API_KEY=key)
    unknown = sandbox(request, product="documents", version="v1", rest=f"documents/{DOC_ID}")
    assert unknown.status_code == 404 and unknown.content == b""
    assert unknown["Content-Type"] == "application/problem+json"


ODD_API = {
    "openapi": "3.0.3",
    "info": {"title": "Odd API", "version": "1"},
    "paths": {
        "/no-responses": {"get": {"operationId": "noResponses"}},
        "/no-content": {"get": {"responses": {"200": {"description": "Nothing."}}}},
        "/xml": {
            "get": {
                "responses": {
                    "200": {
                        "description": "XML.",
                        "content": {"application/xml": {"example": {"not": "xml"}}},
                    }
                }
            }
        },
        "/text": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Text.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                }
            }
        },
        "/anything": {
            "get": {
                "responses": {
                    "2XX": {"description": "Any.", "content": {"*/*": {"example": "raw"}}}
                }
            }
        },
        "/default-only": {
            "get": {
                "responses": {
                    "default": {
                        "description": "Whatever.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"n": {"type": "integer", "minimum": 3}},
                                }
                            }
                        },
                    }
                }
            }
        },
        "/bad-schema": {
            "post": {
                "x-tollgate-group": "read",
                "requestBody": {"content": {"application/json": {"schema": {"type": "strnig"}}}},
                "parameters": [
                    {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": "x"}}
                ],
                "responses": {"201": {"content": {"application/json": {"schema": "nonsense"}}}},
            }
        },
        "/form": {
            "post": {
                "x-tollgate-group": "read",
                "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "Stored."}},
            }
        },
        "/huge": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Huge.",
                        "content": {"application/json": {"example": {"blob": "x" * 1_100_000}}},
                    }
                }
            }
        },
        "/headers": {
            "get": {
                "responses": {
                    "200": {
                        "description": "With headers.",
                        "headers": {
                            "X-Count": {"schema": {"type": "integer", "minimum": 7}},
                            "X-Bad": {"example": "line\r\nInjected: yes"},
                            "RateLimit": {"example": "limit=1, remaining=1, reset=1"},
                        },
                    }
                }
            }
        },
    },
}


@pytest.mark.parametrize(
    ("method", "path", "status", "content_type", "content"),
    [
        ("GET", "/no-responses", 200, "application/json", b"{}"),
        ("GET", "/no-content", 200, None, b""),
        ("GET", "/xml", 200, "application/xml", b'{"not": "xml"}'),
        ("GET", "/text", 200, "text/plain", b"string"),
        ("GET", "/anything", 200, "text/plain; charset=utf-8", b"raw"),
        ("GET", "/default-only", 200, "application/json", b'{"n": 3}'),
        ("POST", "/bad-schema?n=1", 201, "application/json", b"{}"),
        ("GET", "/huge", 502, "application/problem+json", None),
    ],
)
def test_odd_documents_still_answer(client, key, method, path, status, content_type, content):
    upload("odd", ODD_API)
    response = send(
        client,
        key,
        method,
        path,
        {"any": "thing"} if method == "POST" else None,
        base="/sandbox/odd/v1",
    )
    assert response.status_code == status, response.content
    assert response.get("Content-Type") == content_type
    if content is not None:
        assert response.content == content
    else:
        assert response.json()["code"] == "sandbox_example_too_large"


def test_a_form_body_is_not_checked_as_json(client, key):
    upload("odd", ODD_API)
    response = send(
        client,
        key,
        "POST",
        "/form",
        "--x--",
        base="/sandbox/odd/v1",
        CONTENT_TYPE="multipart/form-data; boundary=x",
    )
    assert response.status_code == 200


def test_documented_headers_are_sent_but_never_the_gates_or_unsafe_ones(client, key):
    upload("odd", ODD_API)
    response = send(client, key, path="/headers", base="/sandbox/odd/v1")
    assert response.status_code == 200
    assert response["X-Count"] == "7"
    assert "X-Bad" not in response and "Injected" not in response
    assert response["RateLimit"].startswith("limit=5")  # the gate's, not the example's


def test_a_body_larger_than_the_sandbox_takes_is_413_before_the_gate(client, key):
    response = send(client, key, "POST", "/documents", "x" * (1024 * 1024 + 1))
    assert_problem(response, 413, "payload_too_large")
    statuses = [send(client, key).status_code for _ in range(5)]
    assert statuses == [200] * 5


# --- The status page's measurements --------------------------------------------------------
def test_each_allowed_call_is_recorded_for_the_status_page(client, key):
    from devdocs.models import HealthBucket
    from keys.models import Endpoint

    send(client, key)
    send(client, key, path="/documents/42")  # answered 422: still an answer, not an error
    assert_problem(send(client, key, path="/nothing"), 404, "endpoint_unknown")
    endpoint = Endpoint.objects.get(operation_id="getDocument")
    bucket = HealthBucket.objects.get(endpoint=endpoint, environment="test")
    assert (bucket.calls, bucket.errors) == (2, 0)
    assert sum(bucket.histogram) == 2 and bucket.latency_ms_total > 0
    assert HealthBucket.objects.count() == 1


def test_a_failure_to_record_the_outcome_never_breaks_the_answer(client, key, monkeypatch, caplog):
    import devdocs.health

    def broken(outcomes):
        raise RuntimeError("status store down")

    # Failure injection: the real recorder cannot be made to fail on demand.
    monkeypatch.setattr(devdocs.health, "record_outcomes", broken)
    response = send(client, key)
    assert response.status_code == 200
    assert "could not record the outcome" in caplog.text


def test_each_version_answers_from_its_own_document(client, key):
    other = copy.deepcopy(DOCUMENTS_API)
    other["paths"]["/documents/{document_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["example"]["title"] = "Version two"
    upload("documents", other, version="v2")
    assert send(client, key).json()["title"] == "Quarterly report"
    assert send(client, key, base="/sandbox/documents/v2").json()["title"] == "Version two"


THINGS_API = {
    "openapi": "3.0.3",
    "info": {"title": "Things API", "version": "1"},
    "paths": {
        "/things": {
            "post": {
                "x-tollgate-group": "read",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Made.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        },
                    }
                },
            }
        }
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": {"$ref": "#/components/schemas/Id"},
                    "name": {"type": "string", "nullable": True},
                    "secret": {"type": "string", "writeOnly": True},
                },
            },
            "Id": {"type": "integer", "readOnly": True, "example": 7},
        }
    },
}


def test_read_only_properties_are_not_required_in_requests(client, key):
    upload("things", THINGS_API)
    base = "/sandbox/things/v1"
    made = send(client, key, "POST", "/things", {"name": None, "secret": "s"}, base=base)
    assert made.status_code == 201
    assert made.json() == {"id": 7, "name": "string"}  # generated from the schema
    body = assert_problem(
        send(client, key, "POST", "/things", {}, base=base), 422, "request_invalid"
    )
    assert [error["detail"] for error in body["errors"]] == ["'name' is a required property"]


# --- Only the sandbox's own answers feed the status page -------------------------------------
FLAKY_API = {
    "openapi": "3.0.3",
    "info": {"title": "Flaky API", "version": "1"},
    "paths": {
        "/jobs": {
            "get": {
                "responses": {
                    "200": {"description": "Jobs.", "content": {"application/json": {}}},
                    "503": {"description": "Overloaded.", "content": {"application/json": {}}},
                }
            }
        }
    },
}


def test_answers_chosen_with_prefer_are_not_recorded_for_the_status_page(client, key):
    """A free test key could otherwise post 5xx outcomes at will (`Prefer: code=503`)."""
    from devdocs.models import HealthBucket

    upload("flaky", FLAKY_API)
    base = "/sandbox/flaky/v1"
    assert send(client, key, path="/jobs", base=base, HTTP_PREFER="code=503").status_code == 503
    assert send(client, key, path="/jobs", base=base, HTTP_PREFER="code=200").status_code == 200
    assert send(client, key, HTTP_PREFER="example=nope").status_code == 400  # not this op's
    assert not HealthBucket.objects.exists()
    assert send(client, key, path="/jobs", base=base).status_code == 200  # its own choice
    bucket = HealthBucket.objects.get()
    assert (bucket.environment, bucket.calls, bucket.errors) == ("test", 1, 0)
