"""Reading the provider's OpenAPI 3 document into endpoints, with every problem named.

A document is accepted whole or refused whole: `parse_openapi` returns the operations or
raises InvalidInput listing each reason (path and message), so nothing half-imports.
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

from common.errors import InvalidInput
from keys.openapi_refs import RefError, check_refs, deref

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
READ_METHODS = ("GET", "HEAD", "OPTIONS")
GROUP_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")
PARAMETER = re.compile(r"\{([^{}/]+)\}")
MAX_OPERATIONS = 2000


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path_template: str
    operation_id: str
    summary: str
    tags: tuple[str, ...]
    group: str | None  # from x-tollgate-group, else None
    deprecated: bool
    sunset_at: datetime | None


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    base_path: str
    operations: tuple[Operation, ...]


MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+*-]+/[A-Za-z0-9!#$&^_.+*-]+(\s*;[ -~]*)?$")
MAX_PROBLEMS = 50


def _check_values(document) -> list[dict]:
    """Values PostgreSQL's json cannot store, or that would poison a header or a page:
    NaN and infinities, and NUL characters (in keys or strings)."""
    problems: list[dict] = []
    stack = [(document, "openapi")]
    while stack and len(problems) < MAX_PROBLEMS:
        node, where = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            problems.append({"field": where, "detail": "Numbers must be finite (no NaN)."})
        elif isinstance(node, str) and "\x00" in node:
            problems.append({"field": where, "detail": "Text must not contain NUL characters."})
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and "\x00" in key:
                    problems.append({"field": where, "detail": "A name contains a NUL character."})
                stack.append((value, f"{where}.{key}"))
        elif isinstance(node, list):
            stack.extend((value, f"{where}[{index}]") for index, value in enumerate(node))
    return problems


def _check_media_types(paths) -> list[dict]:
    """Media-type names of request bodies and responses become the sandbox's Content-Type:
    they must be `type/subtype[; parameters]`, printable, on one line."""
    problems: list[dict] = []
    if not isinstance(paths, dict):
        return problems
    for template, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method, operation in item.items():
            if method not in METHODS or not isinstance(operation, dict):
                continue
            where = f"openapi.paths.{template}.{method}"
            contents = []
            body = operation.get("requestBody")
            if isinstance(body, dict):
                contents.append((f"{where}.requestBody.content", body.get("content")))
            responses = operation.get("responses")
            if isinstance(responses, dict):
                for status, response in responses.items():
                    if isinstance(response, dict):
                        contents.append(
                            (f"{where}.responses.{status}.content", response.get("content"))
                        )
            for content_where, content in contents:
                if not isinstance(content, dict):
                    continue
                for media_type in content:
                    if not isinstance(media_type, str) or not MEDIA_TYPE.match(media_type):
                        problems.append(
                            {
                                "field": f"{content_where}.{str(media_type)[:60]!r}",
                                "detail": "A media type is type/subtype, such as application/json.",
                            }
                        )
    return problems[:MAX_PROBLEMS]


def default_group(method: str) -> str:
    return "read" if method in READ_METHODS else "write"


def _base_path(document: dict, problems: list) -> str:
    servers = document.get("servers") or []
    if not isinstance(servers, list):
        problems.append({"field": "openapi.servers", "detail": "servers must be a list."})
        return ""
    if not servers or not isinstance(servers[0], dict):
        return ""
    url = str(servers[0].get("url", ""))
    path = urlparse(url).path if "://" in url else url
    return "/" + path.strip("/") if path.strip("/") else ""


def _sunset(value, field: str, problems: list) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        problems.append({"field": field, "detail": "x-sunset must be an ISO 8601 date."})
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_openapi(document) -> ParsedDocument:
    problems: list[dict] = []
    if not isinstance(document, dict):
        raise InvalidInput(
            "openapi must be the document as a JSON object.",
            field="openapi",
            code="invalid_openapi",
        )
    version = str(document.get("openapi", ""))
    if not version.startswith("3."):
        problems.append(
            {"field": "openapi.openapi", "detail": "Only OpenAPI 3.x documents are accepted."}
        )
    info = document.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("title"), str):
        problems.append({"field": "openapi.info.title", "detail": "info.title is required."})
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        problems.append({"field": "openapi.paths", "detail": "paths must list operations."})
        paths = {}
    base_path = _base_path(document, problems)
    operations = []
    for template, item in paths.items():
        where = f"openapi.paths.{template}"
        if not isinstance(template, str) or not template.startswith("/"):
            problems.append({"field": where, "detail": "A path must start with '/'."})
            continue
        if template.count("{") != template.count("}") or "{}" in template:
            problems.append({"field": where, "detail": "Unbalanced or empty path parameter."})
            continue
        if isinstance(item, dict) and isinstance(item.get("$ref"), str):
            try:  # OpenAPI 3.1: a path item may be a reference (to components.pathItems)
                item = deref(document, item)
            except RefError:
                continue  # named by check_refs below
        if not isinstance(item, dict):
            problems.append({"field": where, "detail": "A path item must be an object."})
            continue
        for method, operation in item.items():
            if method not in METHODS:
                continue  # parameters, summary, servers, $ref ... are not operations
            op_where = f"{where}.{method}"
            if not isinstance(operation, dict):
                problems.append({"field": op_where, "detail": "An operation must be an object."})
                continue
            group = operation.get("x-tollgate-group")
            if group is not None and (not isinstance(group, str) or not GROUP_PATTERN.match(group)):
                problems.append(
                    {
                        "field": f"{op_where}.x-tollgate-group",
                        "detail": "A group is a lowercase name such as 'bulk'.",
                    }
                )
                continue
            tags = operation.get("tags") or []
            operations.append(
                Operation(
                    method=method.upper(),
                    path_template=template,
                    operation_id=str(operation.get("operationId") or "")[:200],
                    summary=str(operation.get("summary") or "")[:500],
                    tags=tuple(str(tag) for tag in tags) if isinstance(tags, list) else (),
                    group=group,
                    deprecated=operation.get("deprecated") is True,
                    sunset_at=_sunset(operation.get("x-sunset"), f"{op_where}.x-sunset", problems),
                )
            )
    if len(operations) > MAX_OPERATIONS:
        problems.append(
            {
                "field": "openapi.paths",
                "detail": f"At most {MAX_OPERATIONS} operations per version.",
            }
        )
    # References are resolved when the docs and the sandbox read the document: any that is
    # not local, or points nowhere, refuses the upload now rather than breaking a page later.
    problems.extend(check_refs(document))
    problems.extend(_check_values(document))
    problems.extend(_check_media_types(paths))
    if not operations and not problems:
        problems.append({"field": "openapi.paths", "detail": "The document has no operations."})
    if problems:
        raise InvalidInput(
            f"The OpenAPI document was refused: {len(problems)} problem(s).",
            code="invalid_openapi",
            errors=[{**problem, "code": "invalid_openapi"} for problem in problems],
        )
    return ParsedDocument(title=info["title"], base_path=base_path, operations=tuple(operations))
