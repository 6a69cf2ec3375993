"""Collections of one API version for Postman (v2.1) and Insomnia (export format 4) (DOCS-4).

Both carry the same requests the reference's samples make (devdocs.samples builds them):
one per operation, in a folder per tag, against the sandbox URL, with the reader's test key
(a placeholder when anonymous) kept in one variable so that a reader switching to a live
key changes it once. Ids are derived from the version and the operation, so downloading
again and re-importing updates the same requests instead of adding copies.

A stored version's document never changes, so everything but the reader's two values
(base URL and key) is built once per version and kept in the cache; each download only
fills those in. The build itself is bounded, because anyone may trigger the first one: its
generated examples share one budget of schema nodes (samples.ExampleSource), its bodies and
saved responses one budget of characters, and each body is cut at MAX_BODY_CHARS; what is
left out is said in the request's description.
"""

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache

from devdocs import openapi_doc, samples
from devdocs.reader import Reader
from devdocs.reference import OTHER_TAG, document_operations
from keys.models import ApiVersion

logger = logging.getLogger(__name__)

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
MAX_OPERATIONS = 1000
MAX_DESCRIPTION = 4000
NAMESPACE = uuid.UUID("0b6f4c1e-5d2a-4f3b-9c7e-6a1d2b3c4e5f")  # for stable ids
MAX_BODY_CHARS = 5_000  # one request body or saved response; a longer one is cut
MAX_EXPORT_CHARS = 1_000_000  # all bodies and saved responses of one export together
EXPORT_EXAMPLE_NODES = 100_000  # schema nodes all generated examples of one export may visit
CACHE_SECONDS = 24 * 3600
CACHE_FORMAT = "1"  # bump when the cached structure changes
BODY_LEFT_OUT = (
    "The example body is left out: this collection's examples reached their size limit. "
    "The reference page shows it."
)
RESPONSE_LEFT_OUT = (
    "The saved example response is left out: this collection's examples reached their "
    "size limit. The reference page shows it."
)
RESPONSE_CUT = f"The saved example response is cut at {MAX_BODY_CHARS:,} characters."


def _stable_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "\x1f".join(parts))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return value if len(value) <= MAX_DESCRIPTION else value[:MAX_DESCRIPTION] + "…"


def _title(api_version: ApiVersion) -> str:
    info = api_version.document.get("info") if isinstance(api_version.document, dict) else None
    title = info.get("title") if isinstance(info, dict) else None
    name = title if isinstance(title, str) and title.strip() else api_version.product.name
    return f"{name[:150]} ({api_version.version})"


def _operation_name(method: str, path: str, op: dict) -> str:
    summary = op.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary.strip()[:200]
    return f"{method.upper()} {path}"[:200]


def _tag(op: dict) -> str:
    tags = op.get("tags")
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str) and tag:
                return tag[:200]
    return OTHER_TAG


def _tag_descriptions(document: dict) -> dict[str, str]:
    tags = document.get("tags") if isinstance(document.get("tags"), list) else []
    return {
        tag["name"]: _text(tag.get("description"))
        for tag in tags
        if isinstance(tag, dict) and isinstance(tag.get("name"), str)
    }


def _grouped(document: dict) -> dict[str, list[tuple[str, str, dict]]]:
    """Operations by their first tag: the document's own tag order first, "Other" last."""
    groups: dict[str, list[tuple[str, str, dict]]] = {
        name: [] for name in _tag_descriptions(document)
    }
    for method, path, op in document_operations(document)[:MAX_OPERATIONS]:
        groups.setdefault(_tag(op), []).append((method, path, op))
    other = groups.pop(OTHER_TAG, [])
    groups = {name: ops for name, ops in groups.items() if ops}
    if other:
        groups[OTHER_TAG] = other
    return groups


class _Budget:
    """What one export build may still spend: schema nodes for examples, body characters."""

    def __init__(self, document: dict):
        self.examples = samples.ExampleSource(document, EXPORT_EXAMPLE_NODES)
        self.chars_left = MAX_EXPORT_CHARS
        self._texts: dict[int, tuple[Any, str]] = {}

    def text(self, value: Any) -> str:
        """A body or example as pretty text, made once per value: the examples made from one
        schema are one object, and indenting JSON is the slow part of an export."""
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        found = self._texts.get(id(value))
        if found is None:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            found = self._texts[id(value)] = (value, text)  # value kept: its id stays its own
        return found[1]

    def take(self, text: str) -> bool:
        """Whether `text` still fits the export; if it does, it is counted."""
        if len(text) > self.chars_left:
            self.chars_left = 0  # the rest is left out too, so the cut is in one place
            return False
        self.chars_left -= len(text)
        return True


def _sample(
    document: dict, method: str, path: str, base_url: str, api_key: str, budget: _Budget
) -> tuple[samples.SampleRequest, list[openapi_doc.Parameter], list[str]]:
    """The sample request with its parameters, and notes on what was left out of it."""
    op = openapi_doc.operation(document, method, path) or {}
    parameters = openapi_doc.parameters(document, method, path)
    body, left_out = budget.examples.request_body(op)
    request = samples.sample_request(
        document,
        method,
        path,
        base_url=base_url,
        api_key=api_key,
        parameters=parameters,
        body=body,
    )
    notes = []
    text = budget.text(request.body) if request.json_body else samples.body_text(request, 2)
    if request.has_body and (left_out or not budget.take(text)):
        request = _without_body(request)
        notes.append(BODY_LEFT_OUT)
    return request, parameters, notes


def _without_body(request: samples.SampleRequest) -> samples.SampleRequest:
    empty: Any = {} if request.body_kind in ("json", "form", "multipart") else ""
    return samples.SampleRequest(
        method=request.method,
        url=request.url,
        query=request.query,
        headers=request.headers,
        media_type=request.media_type,
        body=empty,
        has_body=True,
        response_is_json=request.response_is_json,
    )


def _with_notes(description: str, notes: list[str]) -> str:
    return "\n\n".join([part for part in (description, *notes) if part])


def _path_segments(path: str, values: dict[str, Any]) -> tuple[list[str], list[dict]]:
    """Postman path segments: a whole-segment `{name}` becomes the path variable `:name`
    (with its example as value); a parameter inside a segment is filled in."""
    segments: list[str] = []
    variables: list[dict] = []
    for segment in path.strip("/").split("/"):
        if not segment:
            continue
        if segment.startswith("{") and segment.endswith("}") and segment.count("{") == 1:
            name = segment[1:-1]
            segments.append(f":{name}")
            variables.append(
                {
                    "key": name,
                    "value": samples.value_text(values.get(name)) or name,
                    "type": "string",
                }
            )
        else:
            segments.append(samples.fill_path(segment, values))
    return segments, variables


# --- Postman ------------------------------------------------------------------------------
def _postman_request(
    document: dict, method: str, path: str, op: dict, budget: _Budget
) -> tuple[dict, list[str]]:
    # The collection's own variables stand in for the URL and key: {{baseUrl}}, {{apiKey}}.
    request, parameters, notes = _sample(
        document, method, path, "{{baseUrl}}", "{{apiKey}}", budget
    )
    path_values = {p.name: p.example for p in parameters if p.location == "path"}
    segments, variables = _path_segments(path, path_values)
    query = [
        {
            "key": p.name,
            "value": samples.value_text(p.example),
            "description": _text(p.description),
            "disabled": not p.required,
        }
        for p in parameters
        if p.location == "query"
    ]
    raw = "{{baseUrl}}/" + "/".join(segments)
    enabled = [(q["key"], q["value"]) for q in query if not q["disabled"]]
    if enabled:
        raw += "?" + urlencode(enabled)
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": segments}
    if query:
        url["query"] = query
    if variables:
        url["variable"] = variables
    # Auth is the collection's (bearer {{apiKey}}); the other headers travel with the request.
    headers = [
        {"key": name, "value": value}
        for name, value in request.headers
        if name.lower() not in ("authorization", "x-api-key")
    ]
    body_request: dict[str, Any] = {
        "method": request.method,
        "header": headers,
        "url": url,
        "description": _text(op.get("description")) or _text(op.get("summary")),
    }
    kind = request.body_kind
    if kind == "form":
        body_request["body"] = {
            "mode": "urlencoded",
            "urlencoded": [{"key": name, "value": value} for name, value in request.form],
        }
    elif kind == "multipart":
        body_request["body"] = {
            "mode": "formdata",
            "formdata": [
                {"key": name, "value": value, "type": "text"} for name, value in request.form
            ],
        }
    elif request.has_body:
        body_request["body"] = {
            "mode": "raw",
            "raw": budget.text(request.body)
            if request.json_body
            else samples.body_text(request, indent=2),
            "options": {"raw": {"language": "json" if request.json_body else "text"}},
        }
    return body_request, notes


def _postman_responses(
    document: dict, op: dict, request: dict, budget: _Budget
) -> tuple[list[dict], list[str]]:
    """The success example as a saved response, so the collection shows what comes back."""
    status, media_type, body, left_out = budget.examples.success_response(op)
    if media_type is None and status != 204:
        return [], []
    notes = []
    text = budget.text(body)
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + "\n…"
        notes.append(RESPONSE_CUT)
    if left_out or not budget.take(text):
        text = ""
        notes = [RESPONSE_LEFT_OUT]
    response = {
        "name": f"{status} example",
        "originalRequest": request,
        "status": "Example",
        "code": status,
        "header": [{"key": "Content-Type", "value": media_type}] if media_type else [],
        "body": text,
    }
    if media_type and samples.is_json(media_type):
        response["_postman_previewlanguage"] = "json"
    return [response], notes


def _cache_key(kind: str, api_version: ApiVersion) -> str:
    return f"devdocs:collection:{CACHE_FORMAT}:{kind}:{api_version.pk}"


def cached_build(key: str, build: Callable[[], Any]) -> Any:
    """The cached value, else `build()` stored for next time. A cache that fails (down,
    or an entry from another code version that does not load) is a miss, never an error."""
    try:
        found = cache.get(key)
    except Exception:
        logger.warning("Docs cache read failed for %s", key, exc_info=True)
        found = None
    if found is not None:
        return found
    value = build()
    try:
        cache.set(key, value, CACHE_SECONDS)
    except Exception:
        logger.warning("Docs cache write failed for %s", key, exc_info=True)
    return value


def postman_collection(*, api_version: ApiVersion, reader: Reader) -> dict:
    """The collection with the reader's base URL and key in its two variables; the rest is
    the same for every reader and comes from the cache."""
    shared = cached_build(_cache_key("postman", api_version), lambda: _postman(api_version))
    collection = dict(shared)
    collection["variable"] = [
        {
            "key": "baseUrl",
            "value": reader.sandbox_url(api_version.product.code, api_version.version),
            "type": "string",
        },
        {"key": "apiKey", "value": reader.api_key, "type": "string"},
    ]
    return collection


def _postman(api_version: ApiVersion) -> dict:
    document = api_version.document if isinstance(api_version.document, dict) else {}
    budget = _Budget(document)
    descriptions = _tag_descriptions(document)
    folders = []
    for tag, operations in _grouped(document).items():
        items = []
        for method, path, op in operations:
            try:
                request, notes = _postman_request(document, method, path, op, budget)
                responses, more = _postman_responses(document, op, request, budget)
                if notes or more:
                    request["description"] = _with_notes(request["description"], notes + more)
            except Exception:  # a document we did not foresee: the bare request, not a 500
                logger.exception("Could not export %s %s of %s", method, path, api_version)
                request = {"method": method.upper(), "url": "{{baseUrl}}" + path}
                responses = []
            items.append(
                {
                    "id": str(_stable_id(str(api_version.pk), method, path)),
                    "name": _operation_name(method, path, op),
                    "request": request,
                    "response": responses,
                }
            )
        folder = {"name": tag, "item": items}
        if descriptions.get(tag):
            folder["description"] = descriptions[tag]
        folders.append(folder)
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    return {
        "info": {
            "_postman_id": str(_stable_id(str(api_version.pk), "postman")),
            "name": _title(api_version),
            "description": _text(info.get("description"))
            + "\n\nRequests go to the sandbox with your test key (variables baseUrl and apiKey).",
            "schema": POSTMAN_SCHEMA,
        },
        "auth": {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}],
        },
        "variable": [],  # the reader's: postman_collection fills them in
        "item": folders,
    }


# --- Insomnia -----------------------------------------------------------------------------
def _insomnia_id(prefix: str, *parts: str) -> str:
    return f"{prefix}_{_stable_id(*parts).hex}"


def insomnia_export(
    *, api_version: ApiVersion, reader: Reader, now: datetime | None = None
) -> dict:
    """The export with the reader's base URL and key in its base environment; the rest is
    the same for every reader and comes from the cache."""
    shared = cached_build(_cache_key("insomnia", api_version), lambda: _insomnia(api_version))
    environment_id = _insomnia_id("env", str(api_version.pk), "base")
    resources = []
    for resource in shared["resources"]:
        if resource["_id"] == environment_id:
            resource = dict(resource)
            resource["data"] = {
                "base_url": reader.sandbox_url(api_version.product.code, api_version.version),
                "api_key": reader.api_key,
            }
        resources.append(resource)
    return {
        **shared,
        "__export_date": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "resources": resources,
    }


def _insomnia(api_version: ApiVersion) -> dict:
    document = api_version.document if isinstance(api_version.document, dict) else {}
    budget = _Budget(document)
    key = str(api_version.pk)
    workspace_id = _insomnia_id("wrk", key, "workspace")
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    resources: list[dict] = [
        {
            "_id": workspace_id,
            "_type": "workspace",
            "parentId": None,
            "name": _title(api_version),
            "description": _text(info.get("description")),
            "scope": "collection",
        },
        {
            "_id": _insomnia_id("env", key, "base"),
            "_type": "environment",
            "parentId": workspace_id,
            "name": "Base Environment",
            "data": {},  # the reader's: insomnia_export fills it in
            "dataPropertyOrder": {"&": ["base_url", "api_key"]},
            "color": None,
            "isPrivate": False,
            "metaSortKey": 0,
        },
    ]
    descriptions = _tag_descriptions(document)
    for position, (tag, operations) in enumerate(_grouped(document).items()):
        folder_id = _insomnia_id("fld", key, "tag", tag)
        resources.append(
            {
                "_id": folder_id,
                "_type": "request_group",
                "parentId": workspace_id,
                "name": tag,
                "description": descriptions.get(tag, ""),
                "environment": {},
                "environmentPropertyOrder": None,
                "metaSortKey": position,
            }
        )
        for order, (method, path, op) in enumerate(operations):
            try:
                request, parameters, notes = _sample(
                    document, method, path, "{{ _.base_url }}", "{{ _.api_key }}", budget
                )
            except Exception:  # a document we did not foresee: the bare request, not a 500
                logger.exception("Could not export %s %s of %s", method, path, api_version)
                request = samples.SampleRequest(
                    method=method.upper(), url="{{ _.base_url }}" + path
                )
                parameters, notes = [], []
            headers = [
                {"name": name, "value": value}
                for name, value in request.headers
                if name.lower() not in ("authorization", "x-api-key")
            ]
            if request.body_kind == "multipart":
                # As Insomnia exports it: the type without a boundary, which Insomnia adds.
                headers.append({"name": "Content-Type", "value": samples.MULTIPART_TYPE})
            if request.body_kind in ("form", "multipart"):
                body = {
                    "mimeType": samples.media_base(request.media_type),
                    "params": [{"name": name, "value": value} for name, value in request.form],
                }
            elif request.has_body:
                body = {
                    "mimeType": request.media_type,
                    "text": budget.text(request.body)
                    if request.json_body
                    else samples.body_text(request, 2),
                }
            else:
                body = {}
            resources.append(
                {
                    "_id": _insomnia_id("req", key, method, path),
                    "_type": "request",
                    "parentId": folder_id,
                    "name": _operation_name(method, path, op),
                    "description": _with_notes(_text(op.get("description")), notes),
                    "method": request.method,
                    "url": request.url,
                    "parameters": [
                        {
                            "name": p.name,
                            "value": samples.value_text(p.example),
                            "disabled": not p.required,
                        }
                        for p in parameters
                        if p.location == "query"
                    ],
                    "headers": headers,
                    "body": body,
                    "authentication": {
                        "type": "bearer",
                        "token": "{{ _.api_key }}",
                        "prefix": "",
                        "disabled": False,
                    },
                    "metaSortKey": order,
                    "settingEncodeUrl": True,
                    "settingSendCookies": True,
                    "settingStoreCookies": True,
                    "settingFollowRedirects": "global",
                }
            )
    return {
        "_type": "export",
        "__export_format": 4,
        "__export_date": "",  # the download's: insomnia_export fills it in
        "__export_source": "tollgate.docs:1",
        "resources": resources,
    }
