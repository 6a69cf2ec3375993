"""Reading an uploaded OpenAPI 3 document: references, operations, examples, JSON Schemas.

The reference pages, the sandbox and the collections all read the document through here,
so an example shown in the docs is the body the sandbox answers with, and a schema shown
is the one the sandbox checks requests against.

Only local references (`#/...`) exist in a stored document: `check_refs` refuses any other
at upload, so nothing here ever fetches a URL.
"""

import copy
from dataclasses import dataclass
from typing import Any

from keys.openapi_refs import RefError, check_refs, deref, lookup  # noqa: F401

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_DEPTH = 12  # how deep examples and inlined schemas go before a cycle is cut
# How many schema nodes one generated example may visit. Without a budget, a document whose
# schemas fan out without a cycle (A has ten B's, each B ten C's, ...) makes an example of
# 10^12 values: a page view or a sandbox call would hang on an uploaded document.
EXAMPLE_BUDGET = 2000
MAX_EXAMPLE_STRING = 1000  # a `minLength: 1000000000` is padded no further than this
# OpenAPI keywords that are not JSON Schema (or mean nothing to a validator).
_OPENAPI_ONLY = ("nullable", "discriminator", "xml", "externalDocs", "example", "deprecated")


# --- Operations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path, query, header, cookie
    required: bool
    description: str
    schema: dict
    example: Any
    deprecated: bool


def operation(document: dict, method: str, path_template: str) -> dict | None:
    item = deref(document, (document.get("paths") or {}).get(path_template))
    if not isinstance(item, dict):
        return None
    found = item.get(method.lower())
    return found if isinstance(found, dict) else None


def parameters(document: dict, method: str, path_template: str) -> list[Parameter]:
    """Path-level parameters overridden by the operation's own (same name and location)."""
    item = deref(document, (document.get("paths") or {}).get(path_template))
    item = item if isinstance(item, dict) else {}
    op = operation(document, method, path_template) or {}
    merged: dict[tuple[str, str], dict] = {}
    for source in (item.get("parameters") or [], op.get("parameters") or []):
        for raw in source if isinstance(source, list) else []:
            param = deref(document, raw)
            if isinstance(param, dict) and isinstance(param.get("name"), str):
                merged[(param["name"], str(param.get("in", "query")))] = param
    result = []
    for (name, location), param in merged.items():
        schema = deref(document, param.get("schema")) or {}
        example = param.get("example")
        if example is None and isinstance(param.get("examples"), dict):
            first = next(iter(param["examples"].values()), None)
            example = (deref(document, first) or {}).get("value")
        if example is None:
            example = example_for_schema(document, schema)
        result.append(
            Parameter(
                name=name,
                location=location,
                required=bool(param.get("required")) or location == "path",
                description=str(param.get("description") or ""),
                schema=schema if isinstance(schema, dict) else {},
                example=example,
                deprecated=param.get("deprecated") is True,
            )
        )
    return result


def request_body(document: dict, op: dict) -> tuple[str, dict, bool, Any] | None:
    """(media type, schema, required, example) of the request body, JSON preferred."""
    body = deref(document, op.get("requestBody"))
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        return None
    media_type, media = _pick_media(body["content"])
    if media_type is None:
        return None
    schema = deref(document, media.get("schema")) or {}
    return media_type, schema, bool(body.get("required")), media_example(document, media)


def _pick_media(content: dict) -> tuple[str | None, dict]:
    if not content:
        return None, {}
    for media_type, media in content.items():
        if media_type.split(";")[0].strip() in ("application/json", "application/problem+json"):
            return media_type, media if isinstance(media, dict) else {}
    for media_type, media in content.items():
        if media_type.split(";")[0].strip().endswith("+json"):
            return media_type, media if isinstance(media, dict) else {}
    media_type, media = next(iter(content.items()))
    return media_type, media if isinstance(media, dict) else {}


def media_example(document: dict, media: dict, name: str | None = None) -> Any:
    """The media's `example`, the named (else first) of its `examples`, else one made from
    its schema."""
    if name is None and "example" in media:
        return media["example"]
    examples = media.get("examples")
    if isinstance(examples, dict) and examples:
        chosen = examples.get(name) if name else next(iter(examples.values()))
        chosen = deref(document, chosen)
        if isinstance(chosen, dict) and "value" in chosen:
            return chosen["value"]
    return example_for_schema(document, deref(document, media.get("schema")) or {})


def responses(document: dict, op: dict) -> list[tuple[str, dict]]:
    """(status, response object) pairs as written, references followed."""
    raw = op.get("responses")
    if not isinstance(raw, dict):
        return []
    found = []
    for status, value in raw.items():
        response = deref(document, value)
        found.append((str(status), response if isinstance(response, dict) else {}))
    return found


def success_response(document: dict, op: dict) -> tuple[int, str | None, Any]:
    """(status, media type, body) the sandbox answers with: the first 2xx, else `default`."""
    found = responses(document, op)
    ordered = sorted(
        (status for status, _ in found if status.isdigit() and status.startswith("2")), key=int
    )
    table = dict(found)
    status = ordered[0] if ordered else ("default" if "default" in table else None)
    if status is None:
        return 200, None, None
    return response_body(document, table[status], 200 if status == "default" else int(status))


def response_body(document: dict, response: dict, status: int) -> tuple[int, str | None, Any]:
    content = response.get("content")
    if not isinstance(content, dict) or not content or status == 204:
        return status, None, None
    media_type, media = _pick_media(content)
    return status, media_type, media_example(document, media)


# --- Examples ------------------------------------------------------------------------------
_FORMAT_EXAMPLES = {
    "date-time": "2026-01-15T09:30:00Z",
    "date": "2026-01-15",
    "time": "09:30:00Z",
    "email": "ada@example.com",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "uri": "https://example.com/resource",
    "url": "https://example.com/resource",
    "hostname": "example.com",
    "ipv4": "203.0.113.7",
    "ipv6": "2001:db8::1",
    "byte": "aGVsbG8=",
    "binary": "",
    "password": "********",
}


def _first_type(schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    if kind is None:
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema:
            return "array"
    return kind if isinstance(kind, str) else None


_CYCLE = object()  # what a schema referring back to itself yields: left out of the example


def example_for_schema(document: dict, schema: Any, depth: int = 0) -> Any:
    """A plausible value for `schema`: its own example, default, enum or const first, then one
    built from its type, format and bounds. A schema that refers back to itself ends the
    branch (an empty list, a left-out property), so recursive models stay short."""
    value = _example(document, schema, depth, frozenset(), [EXAMPLE_BUDGET])
    return None if value is _CYCLE else value


def _whole(value: Any, default: int) -> int:
    """A bound such as minLength as an int; the document may hold anything there."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _example(document: dict, schema: Any, depth: int, refs: frozenset, budget: list) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        return _CYCLE  # out of budget: left out, like a cycle
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        if schema["$ref"] in refs:
            return _CYCLE
        refs = refs | {schema["$ref"]}
    schema = deref(document, schema)
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    for keyword in ("example", "const", "default"):
        if keyword in schema:
            return copy.deepcopy(schema[keyword])
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return copy.deepcopy(schema["examples"][0])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("allOf"), list):
        merged: dict = {}
        for part in schema["allOf"]:
            value = _example(document, part, depth + 1, refs, budget)
            if isinstance(value, dict):
                merged.update(value)
        own = {key: value for key, value in schema.items() if key != "allOf"}
        if own.get("properties"):
            value = _example(document, own, depth + 1, refs, budget)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for keyword in ("oneOf", "anyOf"):
        if isinstance(schema.get(keyword), list) and schema[keyword]:
            return _example(document, schema[keyword][0], depth + 1, refs, budget)
    kind = _first_type(schema)
    if kind == "object":
        result = {}
        properties = schema.get("properties")
        for name, sub in (properties if isinstance(properties, dict) else {}).items():
            sub_schema = deref(document, sub) or {}
            if isinstance(sub_schema, dict) and sub_schema.get("writeOnly"):
                continue
            value = _example(document, sub, depth + 1, refs, budget)
            if value is not _CYCLE:
                result[name] = value
        return result
    if kind == "array":
        item = _example(document, schema.get("items") or {}, depth + 1, refs, budget)
        if item is _CYCLE:
            return []
        count = max(1, _whole(schema.get("minItems"), 1))
        return [copy.deepcopy(item) for _ in range(min(count, 3))]
    if kind == "string":
        value = _FORMAT_EXAMPLES.get(str(schema.get("format")), "string")
        minimum = min(_whole(schema.get("minLength"), 0), MAX_EXAMPLE_STRING)
        return value.ljust(minimum, "x") if len(value) < minimum else value
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        if not isinstance(value, int | float) or isinstance(value, bool):
            value = 0
        if "exclusiveMinimum" in schema and schema.get("exclusiveMinimum") is not False:
            value += 1
        if "maximum" in schema and isinstance(schema["maximum"], int | float):
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


# --- JSON Schema for validation ------------------------------------------------------------
# Where a schema object holds other schemas: one schema, a list of them, a map of them.
_ONE_SCHEMA = (
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)
_LIST_OF_SCHEMAS = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP_OF_SCHEMAS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _convert(node: Any, openapi_30: bool) -> Any:
    """One schema object in OpenAPI 3.0's dialect as JSON Schema 2020-12: `nullable` as a
    null type, boolean exclusive bounds as numbers, OpenAPI-only keywords dropped; 3.1
    documents are JSON Schema already. Only schema positions are converted: a property
    named `xml`, or an enum value, is data and stays as it is."""
    if not isinstance(node, dict):
        return node
    result = dict(node)
    for keyword in _ONE_SCHEMA:
        if isinstance(result.get(keyword), dict):
            result[keyword] = _convert(result[keyword], openapi_30)
        elif keyword == "items" and isinstance(result.get(keyword), list):
            result[keyword] = [_convert(item, openapi_30) for item in result[keyword]]
    for keyword in _LIST_OF_SCHEMAS:
        if isinstance(result.get(keyword), list):
            result[keyword] = [_convert(item, openapi_30) for item in result[keyword]]
    for keyword in _MAP_OF_SCHEMAS:
        if isinstance(result.get(keyword), dict):
            result[keyword] = {
                name: _convert(sub, openapi_30) for name, sub in result[keyword].items()
            }
    if openapi_30:
        if result.get("nullable") is True:
            kind = result.get("type")
            if isinstance(kind, str):
                result["type"] = [kind, "null"]
            elif isinstance(result.get("enum"), list) and None not in result["enum"]:
                result["enum"] = [*result["enum"], None]
        for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if result.get(exclusive) is True and bound in result:
                result[exclusive] = result.pop(bound)
            elif result.get(exclusive) is False:
                result.pop(exclusive)
    for keyword in _OPENAPI_ONLY:
        result.pop(keyword, None)
    return result


def _convert_document(node: Any, openapi_30: bool) -> Any:
    """The whole document with every schema in it converted (`schema` members, and the
    maps under `components.schemas`), so any local `$ref` resolves to a converted schema."""
    if isinstance(node, list):
        return [_convert_document(item, openapi_30) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "schema" and isinstance(value, dict):
            result[key] = _convert(value, openapi_30)
        elif key == "schemas" and isinstance(value, dict):
            result[key] = {name: _convert(sub, openapi_30) for name, sub in value.items()}
        elif key in ("example", "examples", "default", "enum", "const"):
            result[key] = value  # data, not schemas
        else:
            result[key] = _convert_document(value, openapi_30)
    return result


def validation_root(document: dict) -> dict:
    """The document converted once for validation: what every `$ref` of a request schema
    resolves against (devdocs/sandbox.py shares it between all validators of a version)."""
    openapi_30 = str(document.get("openapi", "")).startswith("3.0")
    return _convert_document(document, openapi_30)


def json_schema(document: dict, schema: dict) -> dict:
    """A self-contained JSON Schema for `schema`: the converted document's components and
    paths ride along, so that local references resolve against the schema's own root."""
    openapi_30 = str(document.get("openapi", "")).startswith("3.0")
    converted = _convert(copy.deepcopy(schema), openapi_30)
    if not isinstance(converted, dict):
        return {}
    root = validation_root(document)
    for member in ("components", "paths"):
        if isinstance(root.get(member), dict) and member not in converted:
            converted[member] = root[member]
    converted.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    return converted


def convert_schema(document: dict, schema: dict) -> dict:
    """`schema` alone in JSON Schema 2020-12 (its references left as they are)."""
    openapi_30 = str(document.get("openapi", "")).startswith("3.0")
    converted = _convert(copy.deepcopy(schema), openapi_30)
    return converted if isinstance(converted, dict) else {}
