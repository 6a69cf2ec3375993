"""The API reference (DOCS-1): pages rendered from the shipped Documents API document.

Versions are uploaded with keys.services.api_version_create, keys are issued with
key_create (sealed as in production), and every page goes through the real views,
templates, reader and samples. The samples are checked by running them as far as this
machine allows: the curl command is split the way a shell splits it and its URL and
headers read back, the Python one is compiled, parsed and its call arguments evaluated.
"""

import ast
import copy
import html
import json
import re
import shlex
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devdocs import openapi_doc, reference, samples
from devdocs.reader import KEY_PLACEHOLDER, Reader
from keys.models import ApiProduct, ApiVersion
from keys.services import api_version_create, key_create
from portal.audit import Actor
from portal.roles import Role
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, ProjectFactory, UserFactory

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "examples" / "documents_api.json"
SYSTEM = Actor.system("test")
OPERATION_IDS = [
    "listDocuments",
    "createDocument",
    "getDocument",
    "updateDocument",
    "deleteDocument",
    "bulkCreateDocuments",
    "getJob",
    "renderDocument",
]


def documents_api() -> dict:
    return json.loads(DOCUMENT_PATH.read_text())


def upload(document: dict | None = None, *, product="documents", version="v1", private=None):
    return api_version_create(
        actor=SYSTEM,
        product_code=product,
        version=version,
        document=document if document is not None else documents_api(),
        private=private,
    )


def page_url(product="documents", version="v1") -> str:
    return reverse("reference:version", kwargs={"product": product, "version": version})


def issue_test_key(membership, name="Docs key") -> str:
    project = ProjectFactory(organization=membership.organization)
    _key, secret = key_create(
        actor=Actor(user=membership.user), project=project, name=name, environment="test"
    )
    return secret


def text_of(content: bytes) -> str:
    """The page's text without tags, entities decoded: what a reader reads and copies."""
    return html.unescape(re.sub(r"<[^>]+>", "", content.decode()))


def sample_text(content: bytes, anchor: str, language: str) -> str:
    match = re.search(
        rf'<pre id="sample-{anchor}-{language}"><code>(.*?)</code></pre>', content.decode(), re.S
    )
    assert match, f"no {language} sample for {anchor}"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


@pytest.fixture
def version(db):
    return upload()


@pytest.fixture
def member(db):
    return MembershipFactory(role=Role.OWNER)


# --- The shipped document ------------------------------------------------------------------
def test_the_shipped_documents_api_passes_upload_with_every_operation(db):
    uploaded = upload()
    assert uploaded.base_path == "/v1"
    ops = {e.operation_id: e for e in uploaded.endpoints.all()}
    assert sorted(ops) == sorted(OPERATION_IDS)
    assert ops["bulkCreateDocuments"].group == "bulk" == ops["getJob"].group
    assert ops["renderDocument"].deprecated and ops["renderDocument"].sunset_at.year == 2027


# --- The page ------------------------------------------------------------------------------
def test_reference_shows_every_operation_grouped_by_tag_with_its_parts(client, version):
    response = client.get(page_url())
    assert response.status_code == 200
    body = response.content.decode()
    text = text_of(response.content)
    for operation_id in OPERATION_IDS:
        assert f'id="{operation_id.lower()}"' in body
    # Grouped by tag, in the document's tag order, each operation under its first tag.
    documents_at, jobs_at = body.index('id="tag-documents"'), body.index('id="tag-jobs"')
    assert documents_at < body.index('id="listdocuments"') < jobs_at < body.index('id="getjob"')
    assert "Create, read, update, delete and search documents." in text
    # Intro: title, description, live and sandbox base URLs.
    assert "Documents API" in text and "Store, search and publish text documents" in text
    assert "https://api.example.com/v1" in text
    assert "http://testserver/sandbox/documents/v1" in text
    # Authentication from the security schemes.
    assert "Authorization: Bearer <your key>" in text and "X-API-Key: <your key>" in text
    assert "Test keys (tg_test_…) work in the sandbox and against the API's test mode" in text
    authentication = text_of(
        body[body.index('id="authentication"') : body.index('id="errors"')].encode()
    )
    assert "never billed" in authentication and "are refused by the sandbox" in authentication
    assert "sandbox only" not in authentication
    # Parameters with type, required and example.
    assert re.search(r"<code>limit</code>.*?integer.*?≥ 1.*?≤ 100.*?default 20", body, re.S)
    assert "Where the page starts" in text
    # The request body as a nested table: constraints, required, $refs resolved.
    create = body[body.index('id="createdocument"') : body.index('id="getdocument"')]
    assert re.search(
        r"<code>title</code>.*?string.*?required.*?min length 1.*?max length 200", create, re.S
    )
    assert "no other properties" in create and "unique items" in create
    # Responses per status with their examples, pretty printed.
    assert "Quarterly report" in text_of(create.encode())
    assert "422" in create and "validation_failed" in html.unescape(create)
    bulk = body[body.index('id="bulkcreatedocuments"') : body.index('id="getjob"')]
    assert "array of DocumentCreate" in bulk and "min items 1" in bulk and "max items 100" in bulk
    assert re.search(r"<code>documents</code>.*?<code>title</code>", bulk, re.S)
    assert "Retry-After" in text and "RateLimit-Policy" in text


def test_the_group_the_gate_checks_is_shown_as_the_scope_needed(client, version):
    body = client.get(page_url()).content.decode()
    bulk = body[body.index('id="bulkcreatedocuments"') : body.index('id="getjob"')]
    assert "Needs scope <code>bulk</code>" in bulk
    listing = body[body.index('id="listdocuments"') : body.index('id="createdocument"')]
    assert "Needs scope <code>read</code>" in listing
    # An operator's override in admin is what the page shows, as it is what the gate checks.
    version.endpoints.filter(operation_id="listDocuments").update(group="search")
    body = client.get(page_url()).content.decode()
    listing = body[body.index('id="listdocuments"') : body.index('id="createdocument"')]
    assert "Needs scope <code>search</code>" in listing


def test_gate_errors_and_rate_limit_headers_are_explained(client, version):
    text = text_of(client.get(page_url()).content)
    for code in (
        "key_invalid",
        "key_revoked",
        "scope_missing",
        "endpoint_not_in_plan",
        "endpoint_unknown",
        "endpoint_sunset",
        "rate_limited",
        "quota_exhausted",
    ):
        assert code in text
    body = client.get(page_url()).content.decode()
    errors = text_of(body[body.index('id="errors"') : body.index('id="rate-limits"')].encode())
    assert re.search(r"410\s*endpoint_sunset", errors)
    assert re.search(r"429\s*rate_limited", errors)
    assert re.search(r"401\s*key_missing", errors)
    rates = text_of(body[body.index('id="rate-limits"') :].encode())
    assert "RateLimit-Policy" in rates and "Retry-After" in rates


def test_a_deprecated_operation_has_a_badge_with_its_sunset_date(client, version):
    body = client.get(page_url()).content.decode()
    render = body[body.index('id="renderdocument"') :]
    render = render[: render.index("</section>")]
    assert "Deprecated · sunset 2027-06-30" in render
    assert "endpoint_sunset" in render
    create = body[body.index('id="createdocument"') : body.index('id="getdocument"')]
    assert "Deprecated" not in create
    # The Endpoint's sunset (as the operator set it) wins over the document's x-sunset.
    version.endpoints.filter(operation_id="renderDocument").update(
        sunset_at=timezone.now().replace(year=2028, month=1, day=31)
    )
    assert "sunset 2028-01-31" in client.get(page_url()).content.decode()


# --- Samples -------------------------------------------------------------------------------
def test_samples_carry_the_signed_in_readers_own_key_and_the_sandbox_url(client, member):
    upload()
    secret = issue_test_key(member)
    client.force_login(member.user)
    response = client.get(page_url())
    content = response.content
    assert secret in content.decode()
    assert KEY_PLACEHOLDER not in sample_text(content, "listdocuments", "curl")
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]

    curl = shlex.split(sample_text(content, "createdocument", "curl"))
    assert curl[0] == "curl" and curl[curl.index("-X") + 1] == "POST"
    url = next(arg for arg in curl if arg.startswith("http"))
    assert url == "http://testserver/sandbox/documents/v1/documents"
    headers = [curl[i + 1] for i, arg in enumerate(curl) if arg == "-H"]
    assert f"Authorization: Bearer {secret}" in headers
    assert "Content-Type: application/json" in headers
    body = json.loads(curl[curl.index("--data-raw") + 1])
    assert body["title"] == "Quarterly report"

    # Path parameters are filled from the examples; required query parameters would be too.
    get_url = next(
        a for a in shlex.split(sample_text(content, "getdocument", "curl")) if a.startswith("http")
    )
    assert (
        urlsplit(get_url).path
        == "/sandbox/documents/v1/documents/6f1c2a9e-3b4d-4e8f-9a0b-1c2d3e4f5a6b"
    )

    python = sample_text(content, "updatedocument", "python")
    call = run_python_sample(python)
    assert call["method"] == "patch"
    assert call["url"].endswith("/documents/6f1c2a9e-3b4d-4e8f-9a0b-1c2d3e4f5a6b")
    assert call["headers"] == {"Authorization": f"Bearer {secret}"}
    assert call["json"] == {"status": "published"}

    javascript = sample_text(content, "bulkcreatedocuments", "javascript")
    assert 'fetch("http://testserver/sandbox/documents/v1/documents/bulk"' in javascript
    assert f'"Authorization": "Bearer {secret}"' in javascript
    assert '"method": "POST"' not in javascript and 'method: "POST"' in javascript
    stringified = re.search(r"JSON\.stringify\((.*)\),\n\}\);", javascript, re.S)
    assert json.loads(stringified.group(1))["documents"][0]["title"] == "Minutes 2026-01-12"


def run_python_sample(code: str) -> dict:
    """Compiles the sample (a syntax error fails the test) and reads its requests call:
    the function, the positional URL and the keyword arguments, evaluated as literals."""
    compile(code, "<sample>", "exec")
    tree = ast.parse(code)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "requests"
    ]
    assert len(calls) == 1
    call = calls[0]
    found = {"method": call.func.attr, "url": ast.literal_eval(call.args[0])}
    for keyword in call.keywords:
        found[keyword.arg] = ast.literal_eval(keyword.value)
    return found


def test_anonymous_readers_see_the_placeholder_and_a_way_to_get_their_key(client, version):
    response = client.get(page_url())
    content = response.content
    assert f"Authorization: Bearer {KEY_PLACEHOLDER}" in sample_text(
        content, "listdocuments", "curl"
    )
    assert "Sign up" in content.decode()
    assert "public" in response["Cache-Control"]
    assert "tg_test_" not in re.sub(r"tg_test_…", "", text_of(content))


def test_a_member_of_another_org_never_sees_this_orgs_key(client, member):
    upload()
    secret = issue_test_key(member)
    stranger = MembershipFactory(role=Role.OWNER)
    stranger_secret = issue_test_key(stranger)
    client.force_login(stranger.user)
    content = client.get(page_url()).content.decode()
    assert secret not in content and stranger_secret in content
    # Not even by asking for the other org by its slug.
    assert f'href="?org={member.organization.slug}"' not in content
    other = client.get(page_url() + f"?org={member.organization.slug}").content.decode()
    assert secret not in other and stranger_secret in other
    collection = client.get(reverse("reference:postman", args=["documents", "v1"])).content
    assert secret.encode() not in collection


def test_a_viewer_role_sees_the_placeholder_not_the_orgs_key(client, member):
    upload()
    secret = issue_test_key(member)
    viewer = MembershipFactory(organization=member.organization, role=Role.VIEWER)
    client.force_login(viewer.user)
    response = client.get(page_url())
    content = response.content.decode()
    assert secret not in content and KEY_PLACEHOLDER in content
    # No key, but the page is still theirs (their e-mail is in the top bar): never cached.
    assert "no-store" in response["Cache-Control"] and "public" not in response["Cache-Control"]


@pytest.mark.parametrize(
    "value",
    ["it's", 'say "hi"', "a b&c=d", "$(rm -rf /)", "`id`", "line\nbreak", "ünïcödé", "back\\slash"],
)
def test_samples_quote_odd_values_so_they_survive_the_shell_and_python(value):
    document = documents_api()
    document["components"]["parameters"]["DocumentId"]["example"] = value
    document["paths"]["/documents"]["post"]["requestBody"]["content"]["application/json"][
        "example"
    ] = {"title": value, "flag": True, "none": None}
    key = f"tg_test_{value}"
    for method, path in (("patch", "/documents/{document_id}"), ("post", "/documents")):
        request = samples.sample_request(
            document, method, path, base_url="https://h.example/sandbox/documents/v1", api_key=key
        )
        argv = shlex.split(samples.curl(request))
        assert f"Authorization: Bearer {key}" in argv
        url = next(a for a in argv if a.startswith("https://"))
        if "{document_id}" in path:
            assert unquote(urlsplit(url).path.rsplit("/", 1)[1]) == value
        call = run_python_sample(samples.python(request))
        assert call["headers"]["Authorization"] == f"Bearer {key}"
        if method == "post":
            assert json.loads(argv[argv.index("--data-raw") + 1]) == {
                "title": value,
                "flag": True,
                "none": None,
            }
            assert call["json"] == {"title": value, "flag": True, "none": None}


def test_required_query_and_header_parameters_are_in_every_sample():
    document = documents_api()
    listing = document["paths"]["/documents"]["get"]
    listing["parameters"][2]["required"] = True  # q
    listing["parameters"].append(
        {
            "name": "X-Tenant",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "example": "north",
        }
    )
    request = samples.sample_request(
        document, "get", "/documents", base_url="https://h.example/s", api_key="k"
    )
    argv = shlex.split(samples.curl(request))
    url = next(a for a in argv if a.startswith("https://"))
    assert parse_qsl(urlsplit(url).query) == [("q", "report")]
    assert "X-Tenant: north" in argv and "-X" not in argv
    call = run_python_sample(samples.python(request))
    assert call["params"] == {"q": "report"} and call["headers"]["X-Tenant"] == "north"
    assert "https://h.example/s/documents?q=report" in samples.javascript(request)


def test_an_api_key_only_document_gets_x_api_key_samples():
    document = documents_api()
    del document["components"]["securitySchemes"]["bearerAuth"]
    request = samples.sample_request(
        document, "get", "/jobs/{job_id}", base_url="https://h", api_key="k"
    )
    assert request.headers[0] == ("X-API-Key", "k")


# --- Switcher, search, index, redirects, privacy -------------------------------------------
def test_version_switcher_lists_the_products_versions_with_their_state(client, version):
    older = ApiVersion.objects.get(pk=version.pk)
    older.deprecated_at = timezone.now() - timedelta(days=1)
    older.sunset_at = timezone.now() + timedelta(days=90)
    older.save()
    v2 = copy.deepcopy(documents_api())
    v2["info"]["title"] = "Documents API v2"
    upload(v2, version="v2")
    body = client.get(page_url(version="v2")).content.decode()
    switcher = body[body.index('id="docs-version"') : body.index("</select>")]
    assert re.search(r'value="v2"[^>]*selected', switcher)
    sunset_day = older.sunset_at.date().isoformat()
    assert 'data-url="/docs/documents/v1/"' in switcher and f"v1 (sunsets {sunset_day})" in switcher
    # Without JavaScript the switcher is a form: /docs/<product>/?version=v1 redirects.
    response = client.get(reverse("reference:product", args=["documents"]) + "?version=v1")
    assert response.status_code == 302 and response["Location"] == page_url(version="v1")
    assert (
        client.get(reverse("reference:product", args=["documents"]) + "?version=v9").status_code
        == 404
    )


def test_bare_product_address_opens_the_newest_version_not_past_sunset(client, version):
    upload(version="v2")
    product_url = reverse("reference:product", args=["documents"])
    assert client.get(product_url)["Location"] == page_url(version="v2")
    ApiVersion.objects.filter(version="v2").update(sunset_at=timezone.now() - timedelta(days=1))
    assert client.get(product_url)["Location"] == page_url(version="v1")


def test_search_filters_operations_on_the_server(client, version):
    body = client.get(page_url() + "?q=bulk").content.decode()  # "Get a bulk job" too
    assert 'id="bulkcreatedocuments"' in body and 'id="getjob"' in body
    assert 'id="listdocuments"' not in body and "2 of 8 operations match" in body
    body = client.get(page_url() + "?q=bulk+create").content.decode()
    assert 'id="bulkcreatedocuments"' in body and 'id="getjob"' not in body
    # Words match operationId, summary, path and tag, all of them required.
    assert 'id="getjob"' in client.get(page_url() + "?q=jobs").content.decode()
    body = client.get(page_url() + "?q=GET+%2Fdocuments%2F%7Bdocument_id%7D").content.decode()
    assert 'id="getdocument"' in body and 'id="renderdocument"' in body
    assert 'id="updatedocument"' not in body
    body = client.get(page_url() + "?q=listDocuments").content.decode()
    assert 'id="listdocuments"' in body and 'id="getdocument"' not in body
    body = client.get(page_url() + "?q=%3Cscript%3Enothing").content.decode()
    assert "No operation matches" in body and "<script>nothing" not in body


def test_the_docs_index_lists_public_products_and_links_the_guides(client, version):
    upload(product="internal", private=True)
    body = client.get(reverse("reference:index")).content.decode()
    assert 'href="/docs/guides/"' in body
    assert page_url() in body and "/docs/internal/" not in body


def test_a_private_product_is_404_except_for_staff(client, db):
    upload(product="internal", private=True)
    assert client.get(page_url("internal")).status_code == 404
    assert client.get(reverse("reference:product", args=["internal"])).status_code == 404
    assert client.get(reverse("reference:postman", args=["internal", "v1"])).status_code == 404
    client.force_login(MembershipFactory(role=Role.OWNER).user)
    assert client.get(page_url("internal")).status_code == 404
    client.force_login(UserFactory(is_staff=True))
    response = client.get(page_url("internal"))
    assert response.status_code == 200 and "private" in response["Cache-Control"]
    assert "/docs/internal/" in client.get(reverse("reference:index")).content.decode()


def test_unknown_products_and_versions_are_404_pages(client, version):
    for url in (
        page_url("nothing"),
        page_url(version="v9"),
        reverse("reference:product", args=["nothing"]),
        reverse("reference:insomnia", args=["documents", "v9"]),
    ):
        response = client.get(url)
        assert response.status_code == 404
    assert b"Not found" in client.get(page_url("nothing")).content


def test_static_assets_are_local_and_no_external_script_is_loaded(client, version):
    body = client.get(page_url()).content.decode()
    assert "/static/js/docs.js" in body and "/static/css/docs.css" in body
    for src in re.findall(r'(?:src|href)="([^"]+)"', body):
        assert not src.startswith(("http://", "https://", "//")) or src.startswith(
            ("http://testserver", "https://api.example.com", "https://www.apache.org")
        ), src
    for asset in ("js/docs.js", "css/docs.css", "css/highlight.css", "js/portal.js"):
        assert (Path(__file__).resolve().parents[2] / "static" / asset).exists()


# --- Odd documents --------------------------------------------------------------------------
MINIMAL = {"openapi": "3.0.3", "info": {"title": "Odd"}, "paths": {"/things": {"get": {}}}}


def odd(**paths_and_components) -> dict:
    document = copy.deepcopy(MINIMAL)
    document.update(paths_and_components)
    return document


ODD_DOCUMENTS = {
    "no descriptions, no responses": MINIMAL,
    "schema without a type": odd(
        paths={
            "/things": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"properties": {"a": {}}, "required": "a"}
                            }
                        }
                    }
                }
            }
        }
    ),
    "recursive schema": odd(
        paths={
            "/nodes": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "a tree",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Node"}
                                }
                            },
                        }
                    }
                }
            }
        },
        components={
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Node"},
                        },
                        "parent": {"$ref": "#/components/schemas/Node"},
                    },
                }
            }
        },
    ),
    "allOf of itself": odd(
        paths={
            "/x": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/A"}}
                        }
                    }
                }
            }
        },
        components={
            "schemas": {
                "A": {
                    "allOf": [
                        {"$ref": "#/components/schemas/A"},
                        {"properties": {"b": {"type": "integer"}}},
                    ]
                }
            }
        },
    ),
    "parameter without a schema": odd(
        paths={
            "/things/{id}": {
                "get": {
                    "parameters": [
                        {"name": "id", "in": "path"},
                        {"in": "query"},
                        "junk",
                        {"name": 3, "in": "query"},
                    ]
                }
            }
        }
    ),
    "non-JSON media types": odd(
        paths={
            "/files": {
                "put": {
                    "requestBody": {
                        "content": {"application/octet-stream": {}, "text/csv": {"example": "a,b"}}
                    },
                    "responses": {
                        "200": {"description": "ok", "content": {"image/png": {}}},
                        "default": {
                            "description": "err",
                            "content": {"text/plain": {"example": "no"}},
                        },
                    },
                }
            }
        }
    ),
    "wrong types everywhere": odd(
        tags="not a list",
        servers=[{"url": 42}, "x", {"url": "/relative"}],
        paths={
            "/w": {
                "get": {
                    "tags": "oops",
                    "summary": ["x"],
                    "description": {"a": 1},
                    "responses": {"200": "text", "201": {"content": "nope"}},
                    "deprecated": "yes",
                    "x-sunset": "someday",
                }
            }
        },
        components={"securitySchemes": {"a": "b", "c": {"type": "oauth2"}}},
    ),
    "huge numbers and lengths": odd(
        paths={
            "/big": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "s": {"type": "string", "minLength": 10**12},
                                        "n": {"type": "integer", "minimum": "1", "maximum": 1e308},
                                        "l": {
                                            "type": "array",
                                            "minItems": 10**9,
                                            "items": {"type": "string"},
                                        },
                                    },
                                }
                            }
                        }
                    }
                }
            }
        }
    ),
    "fan-out without cycles": odd(
        paths={
            "/fan": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "wide",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/L0"}}
                            },
                        }
                    }
                }
            }
        },
        components={
            "schemas": {
                f"L{level}": {
                    "type": "object",
                    "properties": {
                        f"p{i}": {"$ref": f"#/components/schemas/L{level + 1}"} for i in range(8)
                    },
                }
                for level in range(12)
            }
            | {"L12": {"type": "string"}}
        },
    ),
    "html in descriptions": odd(
        info={
            "title": "<b>x</b>",
            "description": "<script>alert(1)</script> [a](javascript:alert(1))",
        },
        paths={"/h": {"get": {"summary": "<img src=x onerror=alert(1)>"}}},
    ),
}


def store(document: dict, product="odd", version="v1") -> ApiVersion:
    """Stored as it is (as an older Tollgate may have let in), then rendered."""
    product_row, _ = ApiProduct.objects.get_or_create(code=product, defaults={"name": "Odd"})
    return ApiVersion.objects.create(product=product_row, version=version, openapi=document)


@pytest.mark.parametrize("name", list(ODD_DOCUMENTS))
def test_odd_documents_render_without_error(client, db, name):
    store(ODD_DOCUMENTS[name])
    response = client.get(page_url("odd"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert" not in body and "<img src=x" not in body
    assert 'href="javascript:' not in body
    assert client.get(reverse("reference:postman", args=["odd", "v1"])).status_code == 200
    assert client.get(reverse("reference:insomnia", args=["odd", "v1"])).status_code == 200
    if name == "recursive schema":
        assert "recursive: the same Node as above" in body
    assert "could not be read in full" not in body  # read, not skipped by the safety net


def test_a_huge_document_renders_a_capped_page(client, db):
    document = copy.deepcopy(MINIMAL)
    document["paths"] = {f"/r{i}": {"get": {"operationId": f"op{i}"}} for i in range(400)}
    store(document)
    body = client.get(page_url("odd")).content.decode()
    assert body.count("data-docs-op ") == reference.MAX_OPERATIONS
    assert "This API has 400 operations; the first 100 are shown" in body
    assert 'id="op399"' in client.get(page_url("odd") + "?q=op399").content.decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
schema_keywords = st.sampled_from(
    [
        "type",
        "properties",
        "items",
        "allOf",
        "oneOf",
        "anyOf",
        "required",
        "enum",
        "format",
        "minLength",
        "maximum",
        "nullable",
        "additionalProperties",
        "example",
        "$ref",
        "description",
    ]
)
schemas = st.recursive(
    st.dictionaries(schema_keywords, json_values, max_size=4),
    lambda children: st.dictionaries(
        schema_keywords, children | st.lists(children, max_size=3) | json_values, max_size=4
    ),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schema=schemas, parameter=schemas)
def test_any_schema_renders_without_error(schema, parameter):
    """Whatever sits where a schema belongs, the page model and every sample are built.
    $refs the generator makes point nowhere or to a real schema, as uploads allow only those."""

    def fix_refs(node, top=False):
        if isinstance(node, dict):
            return {
                key: ("#/components/schemas/S" if key == "$ref" else fix_refs(value))
                for key, value in node.items()
                if not (top and key == "$ref")  # S = {$ref: S} is refused at upload
            }
        if isinstance(node, list):
            return [fix_refs(item) for item in node]
        return node

    document = {
        "openapi": "3.0.3",
        "info": {"title": "Fuzz"},
        "components": {"schemas": {"S": fix_refs(schema, top=True)}},
        "paths": {
            "/p/{id}": {
                "post": {
                    "parameters": [{"name": "id", "in": "path", "schema": fix_refs(parameter)}],
                    "requestBody": {"content": {"application/json": {"schema": fix_refs(schema)}}},
                    "responses": {
                        "200": {
                            "description": "x",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/S"}}
                            },
                        }
                    },
                }
            }
        },
    }
    table = reference.schema_table(document, fix_refs(schema))
    assert len(table.rows) <= reference.MAX_SCHEMA_ROWS
    views = reference._operation_view(
        document,
        "post",
        "/p/{id}",
        document["paths"]["/p/{id}"]["post"],
        None,
        Reader(site_url="https://h"),
        "https://h/sandbox/f/v1",
        "op",
    )
    assert views.method == "POST" and len(views.samples) == 3
    compile(views.samples[1].code, "<sample>", "exec")
    shlex.split(views.samples[0].code)


# --- The samples, run as pasted against the running sandbox --------------------------------
@pytest.fixture
def live_sandbox(live_server, transactional_db, meters, settings):
    """The Documents API behind the real gate and sandbox, served by a live server."""
    from django.core.cache import cache as django_cache

    from billing.demo_catalog import ensure_demo_catalog
    from keys.gate_api import process_gate

    settings.GATE_DRAIN_INLINE = False
    django_cache.clear()
    ensure_demo_catalog(actor=SYSTEM)
    upload()
    gate = process_gate()
    gate.catalog._refresh_seconds = 0
    gate.entitlements._seconds = 0
    return live_server


def test_pasted_samples_succeed_against_the_running_sandbox(live_sandbox):
    """The measure of the docs: copy a sample, run it, get the documented answer."""
    import subprocess
    import sys
    from urllib.parse import urlsplit as split

    from django.test import Client

    from billing.models import Plan
    from billing.subscriptions import subscription_subscribe

    membership = MembershipFactory(role=Role.OWNER)
    # Free includes only the read group; a write is allowed on Pro (the gate's rule, kept).
    subscription_subscribe(
        actor=SYSTEM, organization=membership.organization, plan=Plan.objects.get(code="pro")
    )
    project = ProjectFactory(organization=membership.organization)
    key_create(
        actor=Actor(user=membership.user),
        project=project,
        name="Quickstart",
        environment="test",
        scopes=["read", "write", "bulk"],
    )
    host = split(live_sandbox.url).netloc
    client = Client(HTTP_HOST=host)
    client.force_login(membership.user)
    content = client.get(page_url()).content
    document = documents_api()
    expected = document["paths"]["/documents/{document_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["example"]

    curl = sample_text(content, "getdocument", "curl")
    assert f"http://{host}/sandbox/documents/v1/documents/" in curl
    ran = subprocess.run(["bash", "-c", curl], capture_output=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == expected

    created = subprocess.run(
        ["bash", "-c", sample_text(content, "createdocument", "curl")],
        capture_output=True,
        timeout=30,
    )
    assert json.loads(created.stdout)["title"] == "Quarterly report", created.stdout

    python = subprocess.run(
        [sys.executable, "-c", sample_text(content, "getdocument", "python")],
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert python.returncode == 0, python.stderr
    assert python.stdout.startswith("200 {") and expected["id"] in python.stdout

    javascript = subprocess.run(
        ["node", "--input-type=module", "-e", sample_text(content, "listdocuments", "javascript")],
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert javascript.returncode == 0, javascript.stderr
    assert javascript.stdout.startswith("200 {")


# --- In a browser ----------------------------------------------------------------------------
def test_search_tabs_copy_and_switcher_work_in_a_browser(page, live_server, artifacts):
    """Headless Chromium: filter as you type, pick a language once for every sample, copy a
    sample with the reader's key, switch versions."""
    upload()
    upload(version="v2")
    member = MembershipFactory(role=Role.DEVELOPER)
    secret = issue_test_key(member)
    page.goto("/accounts/login/")
    page.fill("input[name=login]", member.user.email)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    page.goto(page_url())
    page.screenshot(path=str(artifacts / "docs-reference-top.png"), full_page=False)
    page.locator("#createdocument").screenshot(path=str(artifacts / "docs-reference-operation.png"))

    operations = page.locator("[data-docs-op]")
    assert operations.count() == 8
    page.fill("#docs-search", "bulk create")
    assert page.locator("[data-docs-op]:visible").count() == 1
    assert page.locator("#bulkcreatedocuments").is_visible()
    assert page.locator("#tag-documents").is_hidden()
    assert "1 of 8 operations match." in page.locator("[data-docs-count]").text_content()
    page.screenshot(path=str(artifacts / "docs-reference-search.png"), full_page=False)
    page.fill("#docs-search", "")
    assert page.locator("[data-docs-op]:visible").count() == 8

    create = page.locator("#createdocument")
    assert create.locator('[data-docs-sample="curl"]').is_visible()
    assert create.locator('[data-docs-sample="python"]').is_hidden()
    create.locator('[data-docs-tab="python"]').click()
    assert create.locator('[data-docs-sample="python"]').is_visible()
    assert page.locator('#getjob [data-docs-sample="python"]').is_visible()  # every sample
    create.locator('[data-docs-sample="python"] [data-copy-target]').click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("import requests") and f"Bearer {secret}" in copied
    compile(copied, "<clipboard>", "exec")
    page.screenshot(path=str(artifacts / "docs-reference.png"), full_page=False)

    page.select_option("#docs-version", "v2")
    page.wait_for_url(f"**{page_url(version='v2')}")
    assert page.locator("#docs-version").input_value() == "v2"

    page.goto(reverse("reference:index"))
    page.click("text=Documents API")
    page.wait_for_url(f"**{page_url(version='v2')}")  # the newest version
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts / "docs-reference-mobile.png"), full_page=False)


SELF_REFERENCING = odd(
    paths={
        "/loop": {
            "get": {"summary": "Loops", "parameters": [{"$ref": "#/components/parameters/P"}]}
        },
        "/fine": {"get": {"summary": "Fine"}},
    },
    components={"parameters": {"P": {"$ref": "#/components/parameters/P"}}},
)


def test_an_operation_that_cannot_be_read_is_shown_bare_and_the_rest_in_full(client, db):
    """Uploads refuse a $ref to itself, but a document stored before that check may hold one:
    that operation shows its method and path with a notice, the others render in full."""
    store(SELF_REFERENCING)
    response = client.get(page_url("odd"))
    assert response.status_code == 200
    body = response.content.decode()
    loop = body[body.index('id="get-loop"') :]
    assert "could not be read in full" in loop[: loop.index("</section>")]
    fine = body[body.index('id="get-fine"') :]
    assert "could not be read in full" not in fine[: fine.index("</section>")]
    assert 'id="sample-get-fine-curl"' in body


def test_a_member_of_two_orgs_picks_whose_key_the_samples_use(client, member):
    upload()
    first = issue_test_key(member)
    second_membership = MembershipFactory(user=member.user, role=Role.DEVELOPER)
    second = issue_test_key(second_membership)
    client.force_login(member.user)
    slug = second_membership.organization.slug
    content = client.get(page_url() + f"?org={slug}").content.decode()
    assert second in content and first not in content
    assert f'href="?org={member.organization.slug}"' in content
    # The choice sticks for the collections, which are fetched without ?org=.
    collection = client.get(reverse("reference:postman", args=["documents", "v1"])).content
    assert second.encode() in collection and first.encode() not in collection


# --- Review fixes: bounded work, cached page model, form samples -----------------------------
def wide_document(operations: int = 200, *, distinct_roots: bool = False) -> dict:
    """A legal document whose every generated example reaches openapi_doc's 2,000-node
    budget: N0 has ten N1 properties, ... five levels down. With `distinct_roots`, each
    operation has its own root schema (so no example can be made once and reused)."""
    schemas: dict = {
        f"N{level}": {
            "type": "object",
            "properties": {
                f"field_{i}": {"$ref": f"#/components/schemas/N{level + 1}"} for i in range(10)
            },
        }
        for level in range(1, 5)
    }
    schemas["N5"] = {"type": "string", "minLength": 40}
    root_fields = {f"field_{i}": {"$ref": "#/components/schemas/N1"} for i in range(10)}
    schemas["N0"] = {"type": "object", "properties": root_fields}
    paths = {}
    for index in range(operations // 2):
        root = "N0"
        if distinct_roots:
            root = f"Root{index}"
            schemas[root] = {"type": "object", "properties": dict(root_fields)}
        wide = {"application/json": {"schema": {"$ref": f"#/components/schemas/{root}"}}}
        paths[f"/c{index}/items/{{item_id}}"] = {
            "parameters": [
                {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "operationId": f"get{index}",
                "summary": f"Get {index}",
                "responses": {"200": {"description": "x", "content": wide}},
            },
            "put": {
                "operationId": f"put{index}",
                "summary": f"Put {index}",
                "requestBody": {"content": wide},
                "responses": {"200": {"description": "x", "content": wide}},
            },
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Wide"},
        "components": {"schemas": schemas},
        "paths": paths,
    }


def allof_chain(levels: int, *, distinct: bool = False) -> dict:
    """F0 = allOf of ten F1, ... down to a leaf object: ten parts a level that add no rows.
    With `distinct`, the ten parts are ten different schemas that each lead to the next F."""
    schemas: dict = {f"F{levels}": {"type": "object"}}
    for level in range(levels):
        if distinct:
            parts = [{"$ref": f"#/components/schemas/G{level}_{i}"} for i in range(10)]
            for i in range(10):
                schemas[f"G{level}_{i}"] = {
                    "allOf": [{"$ref": f"#/components/schemas/F{level + 1}"}]
                }
        else:
            parts = [{"$ref": f"#/components/schemas/F{level + 1}"}] * 10
        schemas[f"F{level}"] = {"allOf": parts}
    return {
        "openapi": "3.0.3",
        "info": {"title": "allOf"},
        "paths": {},
        "components": {"schemas": schemas},
    }


def test_allof_parts_are_merged_once_and_a_table_visits_a_bounded_number_of_nodes():
    """Seven levels of allOf: [next] * 10 walked every part: 10^7 visits for one table."""
    document = allof_chain(7)
    table = reference.schema_table(document, {"$ref": "#/components/schemas/F0"})
    assert table.visited <= 20  # the same part ten times is one part: a chain, not a tree
    assert not table.truncated
    # Ten different parts a level (that all lead to the same F): bounded by the visit budget.
    document = allof_chain(7, distinct=True)
    table = reference.schema_table(document, {"$ref": "#/components/schemas/F0"})
    assert table.visited <= reference.MAX_SCHEMA_VISITS + 1
    assert table.truncated
    assert table.rows[-1].note == "(schema too large to show)"


def test_a_schema_too_large_to_show_says_so_on_the_page(client, db):
    document = allof_chain(6, distinct=True)
    document["paths"] = {
        "/a": {
            "post": {
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/F0"}}}
                }
            }
        }
    }
    store(document)
    response = client.get(page_url("odd"))
    assert response.status_code == 200
    assert "(schema too large to show)" in response.content.decode()


def test_the_page_model_is_cached_per_version_and_the_reader_put_in_per_request(client, member):
    version = upload()
    anonymous = client.get(page_url()).content
    assert KEY_PLACEHOLDER in sample_text(anonymous, "getdocument", "curl")
    # A stored document never changes; change it behind the cache's back to prove the second
    # view is the cached model, not a new build.
    changed = documents_api()
    changed["paths"]["/documents/{document_id}"]["get"]["summary"] = "Changed behind the cache"
    ApiVersion.objects.filter(pk=version.pk).update(
        openapi=changed, openapi_text=json.dumps(changed)
    )
    secret = issue_test_key(member)
    client.force_login(member.user)
    content = client.get(page_url()).content
    assert "Changed behind the cache" not in content.decode()
    assert "Get a document" in content.decode()
    # ...yet the reader's own key and sandbox URL are in every sample, in every language.
    for language in ("curl", "python", "javascript"):
        text = sample_text(content, "getdocument", language)
        assert secret in text and KEY_PLACEHOLDER not in text
        assert "http://testserver/sandbox/documents/v1/documents/" in text
        assert reference.API_KEY_STAND_IN not in text and reference.BASE_URL_STAND_IN not in text
    curl = shlex.split(sample_text(content, "createdocument", "curl"))
    assert f"Authorization: Bearer {secret}" in curl
    assert run_python_sample(sample_text(content, "updatedocument", "python"))["headers"] == {
        "Authorization": f"Bearer {secret}"
    }


@pytest.mark.parametrize(
    ("base_url", "api_key"),
    [
        ("https://portal.example/sandbox/documents/v1", "tg_test_" + "A1" * 19),
        ("http://testserver/sandbox/documents/v1", KEY_PLACEHOLDER),
        ("https://h.example/sandbox/it's here", "tg_test_it's $(id)"),  # not plain: spelled anew
    ],
)
def test_cached_samples_with_the_reader_put_in_are_the_samples_built_for_that_reader(
    base_url, api_key
):
    document = documents_api()
    for method, path in (("post", "/documents"), ("patch", "/documents/{document_id}")):
        op = document["paths"][path][method]
        view = reference._operation_model(reference._Build(document), method, path, op, "x")
        put_in = reference._reader_samples(view, base_url, api_key)
        direct = samples.samples_for(document, method, path, base_url=base_url, api_key=api_key)
        by_language = {sample.language: sample.code for sample in put_in}
        assert by_language["curl"] == direct[0].code
        assert by_language["javascript"] == direct[2].code
        assert run_python_sample(by_language["python"]) == run_python_sample(direct[1].code)
        for sample in put_in:
            coloured = html.unescape(re.sub(r"<[^>]+>", "", str(sample.html)))
            assert coloured.rstrip("\n") == sample.code


def test_a_page_of_a_huge_document_shows_a_bounded_amount(client, db):
    """100 operations whose examples and tables are as large as they get: the page's
    examples and schema rows stop at the page's budgets, with a note, and the page stays a
    few MB (it was 9 MB)."""
    store(wide_document(240))
    response = client.get(page_url("odd"))
    assert response.status_code == 200
    assert len(response.content) < 4_000_000
    body = response.content.decode()
    assert "this page&#x27;s examples reached their size limit" in body
    assert "this page&#x27;s schema tables reached their size limit" in body
    page = reference.reference_page(
        api_version=ApiVersion.objects.get(product__code="odd"), reader=Reader(site_url="https://h")
    )
    examples = [
        example
        for section in page.sections
        for op in section.operations
        for example in [op.body.example if op.body else None]
        + [response.example for response in op.responses]
        if example is not None
    ]
    assert sum(len(example.text) for example in examples) <= reference.MAX_PAGE_EXAMPLE_CHARS
    rows = sum(
        len(table.rows)
        for section in page.sections
        for op in section.operations
        for table in [op.body.schema if op.body else None]
        + [response.schema for response in op.responses]
        if table is not None
    )
    assert rows <= reference.MAX_PAGE_SCHEMA_ROWS


def test_generated_examples_of_one_build_share_one_budget():
    """Each operation with its own fanning-out root: no example can be reused, so the
    build's node budget is what bounds the work, and what it leaves out it says."""
    document = wide_document(200, distinct_roots=True)
    source = samples.ExampleSource(document, 20_000)
    left_out = 0
    for index in range(100):
        schema = {"$ref": f"#/components/schemas/Root{index}"}
        _value, cut = source.media({"schema": schema})
        left_out += cut
    assert left_out > 0 and source.left_out == left_out
    assert source.nodes_left >= 0
    # The cost walks themselves are bounded: at most one budget's worth per example asked.
    assert source.nodes_counted <= 100 * openapi_doc.EXAMPLE_BUDGET
    # The same schema again costs nothing more: it is made once.
    again = samples.ExampleSource(document, 20_000)
    for _ in range(50):
        value, cut = again.media({"schema": {"$ref": "#/components/schemas/N0"}})
        assert not cut and isinstance(value, dict)
    assert again.nodes_left >= 20_000 - 2000


FORM_EXAMPLE = {"user": "ada lovelace", "n": 0, "tags": ["a", "b&c"], "note": "@notes.txt;x"}


def form_document(media_type: str) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Forms"},
        "paths": {
            "/forms": {
                "post": {
                    "requestBody": {
                        "content": {
                            media_type: {
                                "schema": {"type": "object"},
                                "example": FORM_EXAMPLE,
                            }
                        }
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }


FORM_FIELDS = [
    ("user", "ada lovelace"),
    ("n", "0"),
    ("tags", "a"),
    ("tags", "b&c"),
    ("note", "@notes.txt;x"),
]


def test_urlencoded_form_samples_send_the_fields_urlencoded():
    request = samples.sample_request(
        form_document("application/x-www-form-urlencoded"),
        "post",
        "/forms",
        base_url="https://h.example/s",
        api_key="k",
    )
    argv = shlex.split(samples.curl(request))
    assert "--data-raw" not in argv
    fields = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--data-urlencode"]
    # curl encodes what follows the first "=": each argument is name=value as sent.
    assert [tuple(field.split("=", 1)) for field in fields] == FORM_FIELDS
    assert not any(arg.startswith("{") for arg in argv)
    call = run_python_sample(samples.python(request))
    assert call["data"] == [list(pair) for pair in FORM_FIELDS]
    assert "json" not in call and "Content-Type" not in call["headers"]
    javascript = samples.javascript(request)
    pairs = re.search(r"body: new URLSearchParams\((.*)\),\n", javascript).group(1)
    assert [tuple(pair) for pair in json.loads(pairs)] == FORM_FIELDS
    assert "Content-Type" not in javascript and "JSON.stringify" not in javascript
    assert parse_qsl(samples.body_text(request)) == FORM_FIELDS


def test_multipart_samples_send_parts_and_let_the_client_write_the_boundary():
    request = samples.sample_request(
        form_document("multipart/form-data"), "post", "/forms", base_url="https://h/s", api_key="k"
    )
    argv = shlex.split(samples.curl(request))
    assert not any(arg.lower().startswith("content-type") for arg in argv)
    assert "--data-raw" not in argv
    parts = [
        tuple(argv[i + 1].split("=", 1))
        for i, arg in enumerate(argv)
        if arg in ("-F", "--form-string")
    ]
    assert parts == FORM_FIELDS
    # A value curl would read as a file (@...) or as part options (;...) goes as a string.
    assert argv[argv.index("--form-string") + 1] == "note=@notes.txt;x"
    call = run_python_sample(samples.python(request))
    assert call["files"] == [(name, (None, value)) for name, value in FORM_FIELDS]
    assert call["headers"] == {"Authorization": "Bearer k"} and "data" not in call
    javascript = samples.javascript(request)
    assert "const form = new FormData();" in javascript and "body: form," in javascript
    assert 'form.append("note", "@notes.txt;x");' in javascript
    assert "Content-Type" not in javascript


def test_a_single_valued_form_is_a_plain_dict_in_python():
    document = form_document("application/x-www-form-urlencoded")
    content = document["paths"]["/forms"]["post"]["requestBody"]["content"]
    content["application/x-www-form-urlencoded"]["example"] = {"user": "ada", "n": 0}
    request = samples.sample_request(document, "post", "/forms", base_url="https://h", api_key="k")
    assert run_python_sample(samples.python(request))["data"] == {"user": "ada", "n": "0"}
    document = form_document("multipart/form-data")
    content = document["paths"]["/forms"]["post"]["requestBody"]["content"]
    content["multipart/form-data"]["example"] = {"user": "ada"}
    request = samples.sample_request(document, "post", "/forms", base_url="https://h", api_key="k")
    assert run_python_sample(samples.python(request))["files"] == {"user": (None, "ada")}


def test_one_view_of_a_page_builds_at_most_one_budget_and_the_rest_wait(client, db):
    """Every operation with its own fanning-out root: one build cannot make them all within
    its budget, so the operations past it are listed with a link to see them alone (and
    built by a later view), instead of one request doing unbounded work."""
    store(wide_document(200, distinct_roots=True))
    first = client.get(page_url("odd")).content.decode()
    assert first.count("data-docs-op ") == 100  # every operation is listed...
    waiting = first.count("docs-op-deferred")
    built = 100 - waiting
    # ...but only as many as the budget allows were built: each path's root (~2,000 nodes)
    # serves its GET and PUT, and one more operation is shown with its examples left out.
    assert 0 < built <= 2 * (reference.PAGE_EXAMPLE_NODES // 2000) + 1
    link = re.search(r'class="notice docs-op-deferred">.*?<a href="\?q=([^"]+)"', first, re.S)
    alone = client.get(page_url("odd") + "?q=" + link.group(1)).content.decode()
    assert "docs-op-deferred" not in alone
    assert "examples reached their size limit" not in alone
    assert 'id="sample-' in alone
    # Each later view builds the next batch from where the cache ends.
    second = client.get(page_url("odd")).content.decode()
    assert second.count("docs-op-deferred") < waiting
