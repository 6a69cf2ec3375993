"""The API reference page model (DOCS-1): one API version's OpenAPI document, made readable.

Everything shown is read from the stored document through devdocs.openapi_doc (so an
example here is the body the sandbox answers with) and from the version's Endpoint rows
(so the group shown is the one the gate checks, after any override in admin). Documents
come from operators and may be odd or huge: every part is optional, every value may have
the wrong type, and what is rendered is capped (operations, schema rows, example sizes), so
no document can make the page fail or take long.
"""

import html
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

from common.errors import NotFound
from devdocs import openapi_doc, samples
from devdocs.reader import Reader
from keys.models import ApiProduct, ApiVersion, Endpoint
from tollgate.middleware import STATUS_BY_CODE

logger = logging.getLogger(__name__)

MAX_OPERATIONS = 100  # operations rendered on one page; search finds the rest
MAX_SCHEMA_ROWS = 150  # rows of one schema table
MAX_SCHEMA_DEPTH = 8  # nesting shown in a schema table
MAX_EXAMPLE_CHARS = 12_000  # a longer pretty-printed example is cut
MAX_TEXT_CHARS = 4_000  # a longer description is cut
MAX_SEARCH_CHARS = 200
OTHER_TAG = "Other"

# What each of the gate's refusal codes means to a caller (docs/gate.md, "Codes"); the
# status each maps to comes from the middleware itself, so the two cannot disagree.
GATE_CODE_MEANINGS = {
    "key_missing": "No key was sent.",
    "key_malformed": "Not a key of this API, or a mistyped one (its checksum fails).",
    "key_invalid": "No such key.",
    "key_revoked": "The key was revoked.",
    "key_expired": "The key has expired, or its rotation grace period has ended.",
    "ip_not_allowed": "The caller's IP address is outside the key's allow-list.",
    "scope_missing": "The key lacks the endpoint's group as a scope.",
    "endpoint_not_in_plan": "Your plan does not include the endpoint's group.",
    "blocked": "The key or the caller's address range is blocked; `block` says why and until when.",
    "payment_past_due": "Invoices are past due (live keys only).",
    "spend_cap_reached": "This period's bill reached your spend cap (live keys only).",
    "endpoint_unknown": "No operation of this API matches the method and path.",
    "endpoint_ambiguous": "The path matches operations of two products.",
    "endpoint_sunset": "The operation is past its sunset date.",
    "rate_limited": (
        "A rate limit (per key, project or organization) is used up; "
        "retry after `Retry-After` seconds."
    ),
    "quota_exhausted": "This period's quota is used up (live keys only).",
}
GATE_STATUSES = (401, 402, 403, 404, 410, 429)
RATE_LIMIT_HEADERS = (
    (
        "RateLimit-Policy",
        "50;w=1, 2000;w=60",
        "The limits that apply to your key: requests per window of w seconds.",
    ),
    (
        "RateLimit",
        "limit=50, remaining=49, reset=1",
        "The tightest limit now: how many calls are left and in how many seconds it resets.",
    ),
    (
        "Retry-After",
        "1",
        "On a 429 only: seconds to wait before calling again. Retry after it, not sooner.",
    ),
)


# --- Reads ---------------------------------------------------------------------------------
def _visible(product: ApiProduct, user) -> bool:
    return not product.private or bool(user is not None and user.is_staff)


def products_for_reader(*, user) -> list[tuple[ApiProduct, list[ApiVersion]]]:
    """The products this reader may read, each with its versions, newest first. Private
    products are shown to staff only."""
    products = ApiProduct.objects.prefetch_related("versions").order_by("name", "code")
    if user is None or not user.is_staff:
        products = products.filter(private=False)
    return [
        (product, sorted(product.versions.all(), key=lambda v: v.created_at, reverse=True))
        for product in products
        if product.versions.all()
    ]


def product_get(*, user, code: str) -> ApiProduct:
    """The product, or NotFound: an unknown product and a private one look the same."""
    product = ApiProduct.objects.filter(code=code).first()
    if product is None or not _visible(product, user):
        raise NotFound("No such API.", code="api_not_found")
    return product


def version_get(*, product: ApiProduct, version: str) -> ApiVersion:
    found = product.versions.filter(version=version).first()
    if found is None:
        raise NotFound("No such version of this API.", code="api_version_not_found")
    return found


def versions_of(product: ApiProduct) -> QuerySet[ApiVersion]:
    return product.versions.order_by("-created_at")


def newest_version(product: ApiProduct) -> ApiVersion:
    """The version a bare product address opens: the newest one not past its sunset, else
    the newest one."""
    now = timezone.now()
    versions = list(versions_of(product))
    if not versions:
        raise NotFound("This API has no versions yet.", code="api_version_not_found")
    live = [v for v in versions if v.sunset_at is None or v.sunset_at > now]
    return (live or versions)[0]


# --- Text ----------------------------------------------------------------------------------
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


def describe(text: Any, limit: int = MAX_TEXT_CHARS) -> SafeString:
    """A description as HTML: paragraphs, `code`, **bold** and http(s) links. OpenAPI
    descriptions are CommonMark, but a document is data, so nothing in it becomes markup
    except these: the text is escaped first and only then are the few patterns applied."""
    if not isinstance(text, str) or not text.strip():
        return mark_safe("")
    text = text.strip()
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        escaped = html.escape(block.strip(), quote=True)
        escaped = _CODE_SPAN.sub(r"<code>\1</code>", escaped)
        escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
        escaped = _LINK.sub(r'<a href="\2" rel="nofollow noopener">\1</a>', escaped)
        paragraphs.append("<p>" + escaped.replace("\n", " ") + "</p>")
    return mark_safe("".join(paragraphs))  # noqa: S308 - built from escaped text only


def _plain(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else ""
    return text if len(text) <= limit else text[:limit] + "…"


_FORMATTER = HtmlFormatter(nowrap=True)


def highlighted(code: str, lexer: str) -> SafeString:
    """Code coloured by Pygments: spans with the classes static/css/highlight.css styles."""
    return mark_safe(highlight(code, get_lexer_by_name(lexer), _FORMATTER))  # noqa: S308


def pretty_json(value: Any, limit: int = MAX_EXAMPLE_CHARS) -> tuple[str, bool]:
    """(pretty text, was it cut)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > limit:
        return text[:limit] + "\n…", True
    return text, False


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# --- Schemas as tables ---------------------------------------------------------------------
@dataclass(frozen=True)
class SchemaRow:
    name: str
    depth: int
    type: str
    required: bool
    constraints: tuple[str, ...]
    description: SafeString
    note: str = ""


@dataclass
class SchemaTable:
    type: str  # of the root, e.g. "object (Document)"
    rows: list[SchemaRow] = field(default_factory=list)
    truncated: bool = False
    description: SafeString = field(default_factory=lambda: mark_safe(""))
    constraints: tuple[str, ...] = ()


def _ref_name(schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return schema["$ref"].rsplit("/", 1)[-1]
    return ""


def _schema_type(document: dict, raw: Any) -> str:
    schema = _deref(document, raw)
    if not isinstance(schema, dict):
        return "any"
    kind = schema.get("type")
    if isinstance(kind, list):
        label = " | ".join(str(k) for k in kind)
    elif isinstance(kind, str):
        label = kind
    elif "properties" in schema:
        label = "object"
    elif "items" in schema:
        label = "array"
    elif any(k in schema for k in ("oneOf", "anyOf")):
        label = "one of"
    elif "allOf" in schema:
        label = "object"
    else:
        label = "any"
    if label == "array":
        items = schema.get("items")
        item_label = _ref_name(items) or _schema_type(document, items) if items else "any"
        label = f"array of {item_label}"
    if isinstance(schema.get("format"), str):
        label += f" ({schema['format']})"
    name = _ref_name(raw)
    if name and not label.startswith("array"):
        label = f"{label} ({name})" if label not in ("any",) else name
    if schema.get("nullable") is True:
        label += " | null"
    return label


def _deref(document: dict, node: Any) -> Any:
    try:
        return openapi_doc.deref(document, node)
    except openapi_doc.RefError:
        return None


def _constraints(schema: dict) -> tuple[str, ...]:
    found = []
    for keyword, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("multipleOf", "multiple of"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("minProperties", "min properties"),
        ("maxProperties", "max properties"),
    ):
        value = schema.get(keyword)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if keyword == "minimum" and schema.get("exclusiveMinimum") is True:
                label = ">"
            if keyword == "maximum" and schema.get("exclusiveMaximum") is True:
                label = "<"
            found.append(f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}")
    for keyword, label in (("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        value = schema.get(keyword)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(f"{label} {value}")
    if isinstance(schema.get("pattern"), str):
        found.append(f"pattern {_plain(schema['pattern'], 120)}")
    if isinstance(schema.get("enum"), list):
        values = ", ".join(json.dumps(v, default=str) for v in schema["enum"][:20])
        more = " …" if len(schema["enum"]) > 20 else ""
        found.append(f"one of {values}{more}")
    if "const" in schema:
        found.append(f"always {json.dumps(schema['const'], default=str)[:80]}")
    if "default" in schema:
        found.append(f"default {json.dumps(schema['default'], default=str)[:80]}")
    if schema.get("uniqueItems") is True:
        found.append("unique items")
    if schema.get("additionalProperties") is False:
        found.append("no other properties")
    if schema.get("readOnly") is True:
        found.append("read-only")
    if schema.get("writeOnly") is True:
        found.append("write-only")
    if schema.get("deprecated") is True:
        found.append("deprecated")
    return tuple(found)


class _TableBuilder:
    def __init__(self, document: dict, limit: int):
        self.document = document
        self.limit = limit
        self.rows: list[SchemaRow] = []
        self.truncated = False

    def add(self, row: SchemaRow) -> bool:
        if len(self.rows) >= self.limit:
            self.truncated = True
            return False
        self.rows.append(row)
        return True

    def children(self, raw: Any, depth: int, refs: frozenset) -> None:
        """The rows inside a schema: its properties, an array's item properties, the
        variants of oneOf/anyOf, the merged parts of allOf."""
        if depth > MAX_SCHEMA_DEPTH or self.truncated:
            return
        ref = raw.get("$ref") if isinstance(raw, dict) else None
        if isinstance(ref, str):
            if ref in refs:
                return  # a schema inside itself (allOf: [itself], items: itself): cut
            refs = refs | {ref}
        schema = _deref(self.document, raw)
        if not isinstance(schema, dict):
            return
        if isinstance(schema.get("allOf"), list):
            for part in schema["allOf"][:20]:
                self.children(part, depth, refs)
        for keyword in ("oneOf", "anyOf"):
            variants = schema.get(keyword)
            if isinstance(variants, list):
                for index, variant in enumerate(variants[:20], start=1):
                    label = "one of" if keyword == "oneOf" else "any of"
                    self.property(f"{label} #{index}", variant, depth, required=False, refs=refs)
        properties = schema.get("properties")
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        if isinstance(properties, dict):
            for name, sub in properties.items():
                if not self.property(str(name), sub, depth, name in required, refs):
                    return
        items = schema.get("items")
        if isinstance(items, dict):
            item_schema = _deref(self.document, items)
            if isinstance(item_schema, dict) and (
                item_schema.get("properties") or item_schema.get("allOf")
            ):
                self.children(items, depth, refs)  # an array's rows are its item's
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict) and additional:
            self.property("(any other name)", additional, depth, required=False, refs=refs)

    def property(self, name: str, raw: Any, depth: int, required: bool, refs: frozenset) -> bool:
        ref = raw.get("$ref") if isinstance(raw, dict) else None
        schema = _deref(self.document, raw)
        schema = schema if isinstance(schema, dict) else {}
        if isinstance(ref, str) and ref in refs:
            return self.add(
                SchemaRow(
                    name=name,
                    depth=depth,
                    type=_ref_name(raw),
                    required=required,
                    constraints=(),
                    description=describe(schema.get("description"), 600),
                    note=f"recursive: the same {_ref_name(raw)} as above",
                )
            )
        added = self.add(
            SchemaRow(
                name=name,
                depth=depth,
                type=_schema_type(self.document, raw),
                required=required,
                constraints=_constraints(schema),
                description=describe(schema.get("description"), 600),
            )
        )
        if added and depth < MAX_SCHEMA_DEPTH:
            self.children(raw, depth + 1, refs)
        return added and not self.truncated


def schema_table(document: dict, raw: Any, limit: int = MAX_SCHEMA_ROWS) -> SchemaTable:
    """A nested, readable table of a schema: $refs followed, cycles cut, rows capped."""
    builder = _TableBuilder(document, limit)
    schema = _deref(document, raw)
    builder.children(raw, 0, frozenset())
    return SchemaTable(
        type=_schema_type(document, raw),
        rows=builder.rows,
        truncated=builder.truncated,
        description=describe(schema.get("description"), 600)
        if isinstance(schema, dict)
        else mark_safe(""),
        constraints=_constraints(schema) if isinstance(schema, dict) else (),
    )


# --- The page ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterRow:
    name: str
    location: str
    type: str
    required: bool
    deprecated: bool
    description: SafeString
    constraints: tuple[str, ...]
    example: str


@dataclass(frozen=True)
class HeaderRow:
    name: str
    type: str
    description: SafeString
    example: str


@dataclass(frozen=True)
class ExampleView:
    name: str
    html: SafeString
    text: str
    truncated: bool


@dataclass
class ResponseView:
    status: str
    description: SafeString
    media_type: str | None
    schema: SchemaTable | None
    example: ExampleView | None
    headers: list[HeaderRow]

    @property
    def kind(self) -> str:
        return self.status[0] + "xx" if self.status[:1] in "12345" else "default"


@dataclass
class BodyView:
    media_type: str
    other_media_types: list[str]
    required: bool
    description: SafeString
    schema: SchemaTable
    example: ExampleView | None


@dataclass
class SampleView:
    language: str
    label: str
    code: str
    html: SafeString
    element_id: str


@dataclass
class OperationView:
    anchor: str
    method: str
    path: str
    operation_id: str
    summary: str
    description: SafeString
    tags: list[str]
    group: str
    deprecated: bool
    sunset_on: date | None
    parameters: list[ParameterRow]
    body: BodyView | None
    responses: list[ResponseView]
    samples: list[SampleView]
    search_text: str
    broken: bool = False


@dataclass
class TagSection:
    name: str
    anchor: str
    description: SafeString
    operations: list[OperationView] = field(default_factory=list)


@dataclass(frozen=True)
class ServerView:
    url: str
    description: str


@dataclass(frozen=True)
class SecurityView:
    name: str
    kind: str
    how: str  # the header line to send, e.g. "Authorization: Bearer <key>"
    description: SafeString


@dataclass(frozen=True)
class VersionChoice:
    version: str
    title: str
    current: bool
    status: str  # "", "deprecated", "sunsets 2027-06-30", "sunset"


@dataclass
class ReferencePage:
    product: ApiProduct
    api_version: ApiVersion
    title: str
    api_version_label: str
    description: SafeString
    servers: list[ServerView]
    sandbox_url: str
    security: list[SecurityView]
    sections: list[TagSection]
    total_operations: int
    shown_operations: int
    capped: bool
    query: str
    versions: list[VersionChoice]
    version_status: str
    gate_errors: list[tuple[int, list[tuple[str, SafeString]]]]
    rate_limit_headers: tuple = RATE_LIMIT_HEADERS


def version_status(api_version: ApiVersion, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if api_version.sunset_at and api_version.sunset_at <= now:
        return "sunset"
    if api_version.sunset_at:
        return f"sunsets {api_version.sunset_at.date().isoformat()}"
    if api_version.deprecated_at and api_version.deprecated_at <= now:
        return "deprecated"
    return ""


def version_choices(api_version: ApiVersion) -> list[VersionChoice]:
    now = timezone.now()
    return [
        VersionChoice(
            version=other.version,
            title=other.title,
            current=other.pk == api_version.pk,
            status=version_status(other, now),
        )
        for other in versions_of(api_version.product)
    ]


def _servers(document: dict) -> list[ServerView]:
    servers = document.get("servers")
    found = []
    for server in servers[:10] if isinstance(servers, list) else []:
        if not isinstance(server, dict) or not isinstance(server.get("url"), str):
            continue
        url = server["url"]
        variables = server.get("variables") if isinstance(server.get("variables"), dict) else {}
        for name, variable in variables.items():
            if isinstance(variable, dict) and "default" in variable:
                url = url.replace("{" + str(name) + "}", str(variable["default"]))
        found.append(ServerView(url=url, description=_plain(server.get("description"))))
    return found


def _security(document: dict) -> list[SecurityView]:
    components = document.get("components")
    schemes = components.get("securitySchemes") if isinstance(components, dict) else None
    found = []
    for name, raw in list((schemes if isinstance(schemes, dict) else {}).items())[:20]:
        scheme = _deref(document, raw)
        if not isinstance(scheme, dict):
            continue
        kind = str(scheme.get("type", ""))
        if kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            how = "Authorization: Bearer <your key>"
        elif kind == "http":
            how = f"Authorization: {str(scheme.get('scheme', '')).title()} …"
        elif kind == "apiKey" and scheme.get("in") == "header":
            how = f"{scheme.get('name', 'X-API-Key')}: <your key>"
        elif kind == "apiKey":
            how = f"{scheme.get('name', 'key')} in the {scheme.get('in', 'query')}"
        else:
            how = kind or "see the description"
        found.append(
            SecurityView(
                name=str(name), kind=kind, how=how, description=describe(scheme.get("description"))
            )
        )
    return found


def _sunset_from(op: dict) -> date | None:
    value = op.get("x-sunset")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).date()


def _example_view(name: str, value: Any) -> ExampleView:
    text, truncated = pretty_json(value)
    lexer = "text" if isinstance(value, str) else "json"
    return ExampleView(name=name, html=highlighted(text, lexer), text=text, truncated=truncated)


def _parameter_rows(document: dict, method: str, path: str) -> list[ParameterRow]:
    rows = []
    for parameter in openapi_doc.parameters(document, method, path)[:100]:
        example = parameter.example
        if example is None:
            shown = ""
        elif isinstance(example, str):
            shown = _plain(example, 300)
        else:
            shown = pretty_json(example, 300)[0]
        rows.append(
            ParameterRow(
                name=parameter.name,
                location=parameter.location,
                type=_schema_type(document, parameter.schema) if parameter.schema else "any",
                required=parameter.required,
                deprecated=parameter.deprecated,
                description=describe(parameter.description, 1000),
                constraints=_constraints(parameter.schema),
                example=shown,
            )
        )
    return rows


def _body_view(document: dict, op: dict) -> BodyView | None:
    found = openapi_doc.request_body(document, op)
    if found is None:
        return None
    media_type, schema, required, example = found
    body = _deref(document, op.get("requestBody"))
    content = body.get("content") if isinstance(body, dict) else {}
    media = content.get(media_type) if isinstance(content, dict) else None
    raw_schema = media.get("schema") if isinstance(media, dict) else None
    return BodyView(
        media_type=media_type,
        other_media_types=[str(t) for t in content if t != media_type][:10],
        required=required,
        description=describe(body.get("description") if isinstance(body, dict) else None),
        schema=schema_table(document, raw_schema if raw_schema is not None else schema),
        example=_example_view("Example", example) if example is not None else None,
    )


def _response_views(document: dict, op: dict) -> list[ResponseView]:
    def order(entry: tuple[str, dict]) -> tuple[int, str]:
        status = entry[0]
        return (int(status), "") if status.isdigit() else (1000, status)

    views = []
    for status, response in sorted(openapi_doc.responses(document, op), key=order)[:30]:
        code = int(status) if status.isdigit() else 200
        _status, media_type, example = openapi_doc.response_body(document, response, code)
        content = response.get("content") if isinstance(response.get("content"), dict) else {}
        media = content.get(media_type) if media_type else None
        raw_schema = media.get("schema") if isinstance(media, dict) else None
        headers = []
        raw_headers = response.get("headers")
        for name, raw in list((raw_headers if isinstance(raw_headers, dict) else {}).items())[:20]:
            header = _deref(document, raw)
            header = header if isinstance(header, dict) else {}
            header_example = header.get("example")
            if header_example is None and isinstance(header.get("schema"), dict | str):
                header_example = openapi_doc.example_for_schema(document, header.get("schema"))
            headers.append(
                HeaderRow(
                    name=str(name),
                    type=_schema_type(document, header.get("schema"))
                    if header.get("schema")
                    else "",
                    description=describe(header.get("description"), 600),
                    example="" if header_example is None else _plain(str(header_example), 200),
                )
            )
        views.append(
            ResponseView(
                status=status,
                description=describe(response.get("description"), 1000),
                media_type=media_type,
                schema=schema_table(document, raw_schema) if raw_schema is not None else None,
                example=_example_view("Example", example)
                if media_type and example is not None
                else None,
                headers=headers,
            )
        )
    return views


def _operation_view(
    document: dict,
    method: str,
    path: str,
    op: dict,
    endpoint: Endpoint | None,
    reader: Reader,
    sandbox_url: str,
    anchor: str,
) -> OperationView:
    raw_tags = op.get("tags") if isinstance(op.get("tags"), list) else []
    tags = [str(tag) for tag in raw_tags if isinstance(tag, str) and tag][:10]
    operation_id = _plain(op.get("operationId"), 200)
    summary = _plain(op.get("summary"), 300)
    deprecated = op.get("deprecated") is True or bool(endpoint and endpoint.deprecated)
    sunset_on = endpoint.sunset_at.date() if endpoint and endpoint.sunset_at else None
    group = endpoint.group if endpoint else (op.get("x-tollgate-group") or "")
    view_samples = []
    for sample in samples.samples_for(
        document, method, path, base_url=sandbox_url, api_key=reader.api_key
    ):
        view_samples.append(
            SampleView(
                language=sample.language,
                label=sample.label,
                code=sample.code,
                html=highlighted(sample.code, sample.lexer),
                element_id=f"sample-{anchor}-{sample.language}",
            )
        )
    return OperationView(
        anchor=anchor,
        method=method.upper(),
        path=path,
        operation_id=operation_id,
        summary=summary,
        description=describe(op.get("description")),
        tags=tags,
        group=str(group),
        deprecated=deprecated,
        sunset_on=sunset_on or (_sunset_from(op) if deprecated or "x-sunset" in op else None),
        parameters=_parameter_rows(document, method, path),
        body=_body_view(document, op),
        responses=_response_views(document, op),
        samples=view_samples,
        search_text=" ".join([operation_id, summary, method.upper(), path, *tags]).lower(),
    )


def _broken_view(method: str, path: str, op: Any, anchor: str) -> OperationView:
    """What is shown for an operation the page could not read: its method and path."""
    op = op if isinstance(op, dict) else {}
    raw_tags = op.get("tags") if isinstance(op.get("tags"), list) else []
    tags = [tag for tag in raw_tags if isinstance(tag, str) and tag]
    return OperationView(
        anchor=anchor,
        method=method.upper(),
        path=path,
        operation_id=_plain(op.get("operationId"), 200),
        summary=_plain(op.get("summary"), 300),
        description=mark_safe(""),
        tags=tags[:10],
        group="",
        deprecated=op.get("deprecated") is True,
        sunset_on=None,
        parameters=[],
        body=None,
        responses=[],
        samples=[],
        search_text=" ".join([method, path, *tags]).lower(),
        broken=True,
    )


OPERATION_METHOD_ORDER = {
    method: index
    for index, method in enumerate(("get", "post", "put", "patch", "delete", "head", "options"))
}


def document_operations(document: dict) -> list[tuple[str, str, dict]]:
    """(method, path, operation), by path and then by method (GET, POST, PUT, PATCH,
    DELETE...). Not the document's own order: the stored document is PostgreSQL jsonb,
    which keeps no key order, so a stable order has to be made."""
    found = []
    paths = document.get("paths")
    for path, raw_item in (paths if isinstance(paths, dict) else {}).items():
        item = _deref(document, raw_item)
        if not isinstance(path, str) or not isinstance(item, dict):
            continue
        for method in openapi_doc.METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                found.append((method, path, op))
    found.sort(key=lambda entry: (entry[1], OPERATION_METHOD_ORDER.get(entry[0], 99)))
    return found


def matches(query: str, text: str) -> bool:
    words = query.lower().split()
    return all(word in text for word in words)


def search_text(method: str, path: str, op: dict) -> str:
    tags = op.get("tags") if isinstance(op.get("tags"), list) else []
    parts = [str(op.get("operationId") or ""), str(op.get("summary") or ""), method, path]
    return " ".join(parts + [str(tag) for tag in tags]).lower()


def reference_page(*, api_version: ApiVersion, reader: Reader, query: str = "") -> ReferencePage:
    """The whole reference of one version, filtered by `query` (operationId, summary,
    method, path and tags must contain every word)."""
    document = api_version.document if isinstance(api_version.document, dict) else {}
    product = api_version.product
    query = query.strip()[:MAX_SEARCH_CHARS]
    sandbox_url = reader.sandbox_url(product.code, api_version.version)
    endpoints = {(e.method, e.path_template): e for e in api_version.endpoints.all()}
    info = document.get("info") if isinstance(document.get("info"), dict) else {}

    declared_tags = document.get("tags") if isinstance(document.get("tags"), list) else []
    sections: dict[str, TagSection] = {}
    for tag in declared_tags[:100]:
        if isinstance(tag, dict) and isinstance(tag.get("name"), str) and tag["name"]:
            sections.setdefault(
                tag["name"],
                TagSection(
                    name=tag["name"],
                    anchor=f"tag-{slug(tag['name'])}",
                    description=describe(tag.get("description"), 1500),
                ),
            )

    operations = document_operations(document)
    shown = 0
    capped = False
    used_anchors: set[str] = set()
    for method, path, op in operations:
        if query and not matches(query, search_text(method, path, op)):
            continue
        if shown >= MAX_OPERATIONS:
            capped = True
            break
        anchor = slug(str(op.get("operationId") or f"{method}-{path}"))
        while anchor in used_anchors:
            anchor += "-2"
        used_anchors.add(anchor)
        try:
            view = _operation_view(
                document,
                method,
                path,
                op,
                endpoints.get((method.upper(), path)),
                reader,
                sandbox_url,
                anchor,
            )
        except Exception:  # a document we did not foresee: show what we can, never fail
            logger.exception("Could not render %s %s of %s", method, path, api_version)
            view = _broken_view(method, path, op, anchor)
        tag = view.tags[0] if view.tags else OTHER_TAG
        section = sections.setdefault(
            tag, TagSection(name=tag, anchor=f"tag-{slug(tag)}", description=mark_safe(""))
        )
        section.operations.append(view)
        shown += 1
    ordered = [s for name, s in sections.items() if name != OTHER_TAG and s.operations]
    if OTHER_TAG in sections and sections[OTHER_TAG].operations:
        ordered.append(sections[OTHER_TAG])

    gate_errors: dict[int, list[tuple[str, SafeString]]] = {}
    for code, status in STATUS_BY_CODE.items():
        if status in GATE_STATUSES and code in GATE_CODE_MEANINGS:
            gate_errors.setdefault(status, []).append((code, describe(GATE_CODE_MEANINGS[code])))

    return ReferencePage(
        product=product,
        api_version=api_version,
        title=_plain(info.get("title"), 200) or api_version.title or product.name,
        api_version_label=_plain(info.get("version"), 50),
        description=describe(info.get("description")),
        servers=_servers(document),
        sandbox_url=sandbox_url,
        security=_security(document),
        sections=ordered,
        total_operations=len(operations),
        shown_operations=shown,
        capped=capped,
        query=query,
        versions=version_choices(api_version),
        version_status=version_status(api_version),
        gate_errors=sorted(gate_errors.items()),
    )
