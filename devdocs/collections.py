"""Collections of one API version for Postman (v2.1) and Insomnia (export format 4) (DOCS-4).

Both carry the same requests the reference's samples make (devdocs.samples builds them):
one per operation, in a folder per tag, against the sandbox URL, with the reader's test key
(a placeholder when anonymous) kept in one variable so that a reader switching to a live
key changes it once. Ids are derived from the version and the operation, so downloading
again and re-importing updates the same requests instead of adding copies.
"""

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from devdocs import openapi_doc, samples
from devdocs.reader import Reader
from devdocs.reference import OTHER_TAG, document_operations
from keys.models import ApiVersion

logger = logging.getLogger(__name__)

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
MAX_OPERATIONS = 1000
MAX_DESCRIPTION = 4000
NAMESPACE = uuid.UUID("0b6f4c1e-5d2a-4f3b-9c7e-6a1d2b3c4e5f")  # for stable ids


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


def _sample(document: dict, method: str, path: str, base_url: str, api_key: str):
    return samples.sample_request(document, method, path, base_url=base_url, api_key=api_key)


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
def _postman_request(document: dict, method: str, path: str, op: dict) -> dict:
    # The collection's own variables stand in for the URL and key: {{baseUrl}}, {{apiKey}}.
    request = _sample(document, method, path, "{{baseUrl}}", "{{apiKey}}")
    parameters = openapi_doc.parameters(document, method, path)
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
    if request.has_body:
        body_request["body"] = {
            "mode": "raw",
            "raw": samples.body_text(request, indent=2),
            "options": {"raw": {"language": "json" if request.json_body else "text"}},
        }
    return body_request


def _postman_responses(document: dict, op: dict, request: dict) -> list[dict]:
    """The success example as a saved response, so the collection shows what comes back."""
    status, media_type, body = openapi_doc.success_response(document, op)
    if media_type is None and status != 204:
        return []
    if isinstance(body, str):
        text = body
    else:
        text = "" if body is None else json.dumps(body, indent=2, ensure_ascii=False, default=str)
    response = {
        "name": f"{status} example",
        "originalRequest": request,
        "status": "Example",
        "code": status,
        "header": [{"key": "Content-Type", "value": media_type}] if media_type else [],
        "body": text[:50_000],
    }
    if media_type and samples.is_json(media_type):
        response["_postman_previewlanguage"] = "json"
    return [response]


def postman_collection(*, api_version: ApiVersion, reader: Reader) -> dict:
    document = api_version.document if isinstance(api_version.document, dict) else {}
    product = api_version.product
    descriptions = _tag_descriptions(document)
    folders = []
    for tag, operations in _grouped(document).items():
        items = []
        for method, path, op in operations:
            try:
                request = _postman_request(document, method, path, op)
                responses = _postman_responses(document, op, request)
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
        "variable": [
            {
                "key": "baseUrl",
                "value": reader.sandbox_url(product.code, api_version.version),
                "type": "string",
            },
            {"key": "apiKey", "value": reader.api_key, "type": "string"},
        ],
        "item": folders,
    }


# --- Insomnia -----------------------------------------------------------------------------
def _insomnia_id(prefix: str, *parts: str) -> str:
    return f"{prefix}_{_stable_id(*parts).hex}"


def insomnia_export(
    *, api_version: ApiVersion, reader: Reader, now: datetime | None = None
) -> dict:
    document = api_version.document if isinstance(api_version.document, dict) else {}
    product = api_version.product
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
            "data": {
                "base_url": reader.sandbox_url(product.code, api_version.version),
                "api_key": reader.api_key,
            },
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
                request = _sample(document, method, path, "{{ _.base_url }}", "{{ _.api_key }}")
                parameters = openapi_doc.parameters(document, method, path)
            except Exception:  # a document we did not foresee: the bare request, not a 500
                logger.exception("Could not export %s %s of %s", method, path, api_version)
                request = samples.SampleRequest(
                    method=method.upper(), url="{{ _.base_url }}" + path
                )
                parameters = []
            resources.append(
                {
                    "_id": _insomnia_id("req", key, method, path),
                    "_type": "request",
                    "parentId": folder_id,
                    "name": _operation_name(method, path, op),
                    "description": _text(op.get("description")),
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
                    "headers": [
                        {"name": name, "value": value}
                        for name, value in request.headers
                        if name.lower() not in ("authorization", "x-api-key")
                    ],
                    "body": (
                        {"mimeType": request.media_type, "text": samples.body_text(request, 2)}
                        if request.has_body
                        else {}
                    ),
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
        "__export_date": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "__export_source": "tollgate.docs:1",
        "resources": resources,
    }
