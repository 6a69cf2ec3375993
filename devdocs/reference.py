"""The API reference page model (DOCS-1): one API version's OpenAPI document, made readable.

Everything shown is read from the stored document through devdocs.openapi_doc (so an
example here is the body the sandbox answers with) and from the version's Endpoint rows
(so the group shown is the one the gate checks, after any override in admin). Documents
come from operators and may be odd or huge: every part is optional, every value may have
the wrong type, and what is rendered is capped (operations, schema rows, example sizes), so
no document can make the page fail or take long.

A stored version's document never changes, so the page model is built once per version and
kept in the cache (django.core.cache): an index of the operations (what search and the
table of contents need) and each operation's view, samples included. What depends on the
reader or on admin is put in per request: the reader's sandbox URL and key go into the
samples (built with stand-ins for both), the endpoint's group, deprecation and sunset come
from its Endpoint row, and the version switcher from the versions table. A first build is
bounded too, as anyone may trigger it: generated examples share one budget of schema nodes
(samples.ExampleSource), schema tables one of visits, and one page view one of example
characters.
"""

import dataclasses
import hashlib
import html
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.core.cache import cache
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
MAX_SCHEMA_VISITS = 2_000  # schema nodes one table may visit (allOf fans out without rows)
PAGE_EXAMPLE_NODES = 40_000  # schema nodes the generated examples of one page build may visit
MAX_PAGE_EXAMPLE_CHARS = 200_000  # example text on one page; past it examples are left out
MAX_PAGE_SCHEMA_ROWS = 3_000  # schema rows on one page; past it tables are left out
PAGE_TABLE_VISITS = 60_000  # schema nodes the tables of one page build may visit
OTHER_TAG = "Other"
CACHE_FORMAT = "1"  # bump when the cached page model changes shape
CACHE_SECONDS = 24 * 3600
# Stand-ins for the reader's sandbox URL and key in cached samples: plain characters that
# every language writes as they are, of a real value's length (the Python sample's layout
# depends on line length), so putting the reader's values in gives the same sample.
BASE_URL_STAND_IN = "https://tg-sandbox-base-url.invalid/sandbox/api/v1"
API_KEY_STAND_IN = "tg_reader_key_stand_in_" + "x" * 23
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]*\Z")

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
    """The version, its document not loaded: pages and collections come from the cache, and
    `document` loads it on first use when they do not."""
    found = product.versions.filter(version=version).defer("openapi", "openapi_text").first()
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
    visited: int = 0  # schema nodes visited to build it: at most MAX_SCHEMA_VISITS + 1
    left_out: str = ""  # why the rows are not shown (the page's budget ran out)


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
    def __init__(self, document: dict, limit: int, visits: int = MAX_SCHEMA_VISITS):
        self.document = document
        self.limit = limit
        self.visits_left = visits
        self.visited = 0
        self.rows: list[SchemaRow] = []
        self.truncated = False

    def add(self, row: SchemaRow) -> bool:
        if len(self.rows) >= self.limit:
            self.truncated = True
            return False
        self.rows.append(row)
        return True

    def visit(self, depth: int) -> bool:
        """Counts a schema node; False once the table's budget is spent. The row cap alone
        does not bound the work: allOf parts that add no rows (allOf: [B] * 10, each B the
        same again) were walked 10^levels times without ever reaching it."""
        self.visited += 1
        self.visits_left -= 1
        if self.visits_left >= 0:
            return True
        if not self.truncated:
            self.truncated = True
            self.rows.append(
                SchemaRow(
                    name="…",
                    depth=min(depth, MAX_SCHEMA_DEPTH),
                    type="",
                    required=False,
                    constraints=(),
                    description=mark_safe(""),
                    note="(schema too large to show)",
                )
            )
        return False

    def children(self, raw: Any, depth: int, refs: frozenset) -> None:
        """The rows inside a schema: its properties, an array's item properties, the
        variants of oneOf/anyOf, the merged parts of allOf."""
        if depth > MAX_SCHEMA_DEPTH or self.truncated or not self.visit(depth):
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
            merged: set = set()
            for part in schema["allOf"][:20]:
                # The same part twice adds nothing to the merge: shown once.
                seen = part.get("$ref") if isinstance(part, dict) else None
                seen = seen if isinstance(seen, str) else id(part)
                if seen not in merged:
                    merged.add(seen)
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
        if not self.visit(depth):
            return False
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
        visited=builder.visited,
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
    left_out: str = ""  # why there is no example text (a budget ran out), when there is none


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
    lexer: str = "text"


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
    deferred: bool = False  # not built on this view of the page: its build budget ran out
    # What the document says, before the Endpoint row (admin) is applied per request.
    doc_group: str = ""
    doc_deprecated: bool = False
    doc_sunset: date | None = None
    doc_has_sunset: bool = False
    # The samples' request with the stand-ins, to spell again for an unusual reader value.
    sample_request: samples.SampleRequest | None = None


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


LEFT_OUT_BUDGET = (
    "Left out: this page's examples reached their size limit. Search for this operation to "
    "see it alone; the sandbox answers with it."
)
TABLE_LEFT_OUT = (
    "The fields are left out: this page's schema tables reached their size limit. Search "
    "for this operation to see it alone."
)


def _example_view(name: str, value: Any) -> ExampleView:
    text, truncated = pretty_json(value)
    lexer = "text" if isinstance(value, str) else "json"
    return ExampleView(name=name, html=highlighted(text, lexer), text=text, truncated=truncated)


def _left_out_view(name: str) -> ExampleView:
    return ExampleView(
        name=name, html=mark_safe(""), text="", truncated=False, left_out=LEFT_OUT_BUDGET
    )


def _parameter_rows(parameters: list[openapi_doc.Parameter], document: dict) -> list[ParameterRow]:
    rows = []
    for parameter in parameters[:100]:
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


class _Build:
    """What one page build shares: generated examples (made once, within one budget of
    schema nodes) and schema tables (made once per schema)."""

    def __init__(
        self,
        document: dict,
        node_budget: int = PAGE_EXAMPLE_NODES,
        table_visits: int = PAGE_TABLE_VISITS,
    ):
        self.document = document
        self.examples = samples.ExampleSource(document, node_budget)
        self.table_visits_left = table_visits
        self._tables: dict[tuple, tuple[Any, SchemaTable]] = {}
        self._examples: dict[tuple, tuple[Any, ExampleView]] = {}

    def table(self, raw: Any) -> SchemaTable:
        ref = raw.get("$ref") if isinstance(raw, dict) else None
        target = _deref(self.document, raw)
        key = (ref if isinstance(ref, str) else None, id(target), id(raw) if ref is None else 0)
        found = self._tables.get(key)
        if found is None:
            found = (raw, schema_table(self.document, raw))  # raw kept: its id stays its own
            self._tables[key] = found
            self.table_visits_left -= found[1].visited
        return found[1]

    @property
    def spent(self) -> bool:
        """Whether this build has used up a budget: the operations still to build wait."""
        return self.examples.left_out > 0 or self.table_visits_left <= 0

    def example(self, name: str, value: Any, left_out: bool) -> ExampleView | None:
        """The example pretty printed and coloured, once per value: examples made from one
        schema are one object, and colouring is the slow part of a page."""
        if left_out:
            return _left_out_view(name)
        if value is None:
            return None
        found = self._examples.get((name, id(value)))
        if found is None:
            found = (value, _example_view(name, value))  # value kept: its id stays its own
            self._examples[(name, id(value))] = found
        return found[1]


def _body_view(build: _Build, op: dict, found: tuple | None, left_out: bool) -> BodyView | None:
    if found is None:
        return None
    document = build.document
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
        schema=build.table(raw_schema if raw_schema is not None else schema),
        example=build.example("Example", example, left_out),
    )


def _response_views(build: _Build, op: dict) -> list[ResponseView]:
    def order(entry: tuple[str, dict]) -> tuple[int, str]:
        status = entry[0]
        return (int(status), "") if status.isdigit() else (1000, status)

    document = build.document
    views = []
    for status, response in sorted(openapi_doc.responses(document, op), key=order)[:30]:
        code = int(status) if status.isdigit() else 200
        _status, media_type, example, left_out = build.examples.response_body(response, code)
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
                header_example, _cut = build.examples.media({"schema": header.get("schema")})
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
                schema=build.table(raw_schema) if raw_schema is not None else None,
                example=build.example("Example", example, left_out) if media_type else None,
                headers=headers,
            )
        )
    return views


def _operation_model(build: _Build, method: str, path: str, op: dict, anchor: str) -> OperationView:
    """The operation as every reader sees it: no Endpoint row applied, samples with the
    stand-ins for the reader's sandbox URL and key."""
    document = build.document
    raw_tags = op.get("tags") if isinstance(op.get("tags"), list) else []
    tags = [str(tag) for tag in raw_tags if isinstance(tag, str) and tag][:10]
    operation_id = _plain(op.get("operationId"), 200)
    summary = _plain(op.get("summary"), 300)
    parameters = openapi_doc.parameters(document, method, path)
    body, body_left_out = build.examples.request_body(op)
    request = samples.sample_request(
        document,
        method,
        path,
        base_url=BASE_URL_STAND_IN,
        api_key=API_KEY_STAND_IN,
        parameters=parameters,
        body=body,
    )
    view_samples = [
        SampleView(
            language=sample.language,
            label=sample.label,
            code=sample.code,
            html=highlighted(sample.code, sample.lexer),
            element_id=f"sample-{anchor}-{sample.language}",
            lexer=sample.lexer,
        )
        for sample in samples.samples_for(
            document, method, path, base_url="", api_key="", request=request
        )
    ]
    doc_deprecated = op.get("deprecated") is True
    doc_group = str(op.get("x-tollgate-group") or "")
    return OperationView(
        anchor=anchor,
        method=method.upper(),
        path=path,
        operation_id=operation_id,
        summary=summary,
        description=describe(op.get("description")),
        tags=tags,
        group=doc_group,
        deprecated=doc_deprecated,
        sunset_on=None,
        parameters=_parameter_rows(parameters, document),
        body=_body_view(build, op, body, body_left_out),
        responses=_response_views(build, op),
        samples=view_samples,
        search_text=" ".join([operation_id, summary, method.upper(), path, *tags]).lower(),
        doc_group=doc_group,
        doc_deprecated=doc_deprecated,
        doc_sunset=_sunset_from(op),
        doc_has_sunset="x-sunset" in op,
        sample_request=request,
    )


def _reader_samples(view: OperationView, base_url: str, api_key: str) -> list[SampleView]:
    """The cached samples with the reader's sandbox URL and key in place of the stand-ins.

    Plain values (a key is tg_test_ and letters and digits; a URL of an allowed host) read
    the same in every language's quoting, so they are put into the text and its colouring
    as they are; anything else, and any colouring that split a stand-in, is spelled anew
    from the sample's request."""
    base_url = base_url.rstrip("/")
    if not view.samples:
        return []
    if _PLAIN.match(base_url) and _PLAIN.match(api_key):
        found = []
        for sample in view.samples:
            code = sample.code.replace(BASE_URL_STAND_IN, base_url).replace(
                API_KEY_STAND_IN, api_key
            )
            coloured = str(sample.html)
            if coloured.count(BASE_URL_STAND_IN) == sample.code.count(
                BASE_URL_STAND_IN
            ) and coloured.count(API_KEY_STAND_IN) == sample.code.count(API_KEY_STAND_IN):
                html_text = mark_safe(  # noqa: S308 - plain characters into Pygments' HTML
                    coloured.replace(BASE_URL_STAND_IN, base_url).replace(API_KEY_STAND_IN, api_key)
                )
            else:
                html_text = highlighted(code, sample.lexer)
            found.append(dataclasses.replace(sample, code=code, html=html_text))
        return found
    request = view.sample_request
    if request is None:
        return []
    request = dataclasses.replace(
        request,
        url=request.url.replace(BASE_URL_STAND_IN, base_url),
        headers=[
            (name, value.replace(API_KEY_STAND_IN, api_key)) for name, value in request.headers
        ],
    )
    by_language = {sample.language: sample for sample in view.samples}
    return [
        dataclasses.replace(
            by_language[sample.language],
            code=sample.code,
            html=highlighted(sample.code, sample.lexer),
        )
        for sample in samples.samples_for({}, "", "", base_url="", api_key="", request=request)
        if sample.language in by_language
    ]


def _for_reader(
    view: OperationView, endpoint: Endpoint | None, base_url: str, api_key: str
) -> OperationView:
    """The cached view with what is the reader's and the operator's put in."""
    if view.broken or view.deferred:
        return view
    deprecated = view.doc_deprecated or bool(endpoint and endpoint.deprecated)
    sunset_on = endpoint.sunset_at.date() if endpoint and endpoint.sunset_at else None
    if sunset_on is None and (deprecated or view.doc_has_sunset):
        sunset_on = view.doc_sunset
    return dataclasses.replace(
        view,
        group=str(endpoint.group) if endpoint else view.doc_group,
        deprecated=deprecated,
        sunset_on=sunset_on,
        samples=_reader_samples(view, base_url, api_key),
    )


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
    """One operation for one reader, built now (the page takes its views from the cache)."""
    view = _operation_model(_Build(document), method, path, op, anchor)
    return _for_reader(view, endpoint, sandbox_url, reader.api_key)


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


# --- The page, cached per version ----------------------------------------------------------
@dataclass(frozen=True)
class IndexEntry:
    method: str
    path: str
    anchor: str
    tag: str  # the section it is listed under: its first tag, else OTHER_TAG
    search_text: str
    cache_key: str


@dataclass
class PageIndex:
    """What a page needs before its operations: the version's reader-independent parts and
    every operation's place (anchor, section, search words), in order."""

    title: str
    api_version_label: str
    description: SafeString
    servers: list[ServerView]
    security: list[SecurityView]
    sections: list[tuple[str, str, SafeString]]  # declared tags: name, anchor, description
    entries: list[IndexEntry]


def _cache_prefix(api_version: ApiVersion) -> str:
    return f"devdocs:reference:{CACHE_FORMAT}:{api_version.pk}"


def _cache_get_many(keys: list[str]) -> dict[str, Any]:
    try:
        return cache.get_many(keys)
    except Exception:  # any cache trouble (down, an entry that no longer loads): a miss
        logger.warning("Docs cache read failed", exc_info=True)
        return {}


def _cache_set_many(values: dict[str, Any]) -> None:
    if not values:
        return
    try:
        cache.set_many(values, CACHE_SECONDS)
    except Exception:
        logger.warning("Docs cache write failed", exc_info=True)


def _first_tag(op: dict) -> str:
    raw_tags = op.get("tags") if isinstance(op.get("tags"), list) else []
    return next((str(tag) for tag in raw_tags if isinstance(tag, str) and tag), OTHER_TAG)


def _build_index(api_version: ApiVersion) -> PageIndex:
    document = api_version.document if isinstance(api_version.document, dict) else {}
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    declared_tags = document.get("tags") if isinstance(document.get("tags"), list) else []
    sections: dict[str, tuple[str, str, SafeString]] = {}
    for tag in declared_tags[:100]:
        if isinstance(tag, dict) and isinstance(tag.get("name"), str) and tag["name"]:
            sections.setdefault(
                tag["name"],
                (tag["name"], f"tag-{slug(tag['name'])}", describe(tag.get("description"), 1500)),
            )
    prefix = _cache_prefix(api_version)
    entries = []
    used_anchors: set[str] = set()
    for method, path, op in document_operations(document):
        anchor = slug(str(op.get("operationId") or f"{method}-{path}"))
        while anchor in used_anchors:
            anchor += "-2"
        used_anchors.add(anchor)
        digest = hashlib.sha256(f"{method} {path}".encode()).hexdigest()[:24]
        entries.append(
            IndexEntry(
                method=method,
                path=path,
                anchor=anchor,
                tag=_first_tag(op),
                search_text=search_text(method, path, op),
                cache_key=f"{prefix}:op:{digest}",
            )
        )
    return PageIndex(
        title=_plain(info.get("title"), 200),
        api_version_label=_plain(info.get("version"), 50),
        description=describe(info.get("description")),
        servers=_servers(document),
        security=_security(document),
        sections=list(sections.values()),
        entries=entries,
    )


def page_index(api_version: ApiVersion) -> PageIndex:
    key = f"{_cache_prefix(api_version)}:index"
    found = _cache_get_many([key]).get(key)
    if not isinstance(found, PageIndex):
        found = _build_index(api_version)
        _cache_set_many({key: found})
    return found


def operation_views(api_version: ApiVersion, entries: list[IndexEntry]) -> list[OperationView]:
    """The cached view of each entry; the missing ones are built and stored, within one
    budget for the whole build (generated examples, table visits). Once it is spent, the
    operations still missing are shown by method, path and summary with a link to see them
    alone, and are not stored: a later view (or a search for one) builds them in full, so no
    request does more than one budget's work however the document is made."""
    found = _cache_get_many([entry.cache_key for entry in entries])
    missing = [
        entry for entry in entries if not isinstance(found.get(entry.cache_key), OperationView)
    ]
    if missing:
        document = api_version.document if isinstance(api_version.document, dict) else {}
        build = _Build(document)
        paths = document.get("paths") if isinstance(document.get("paths"), dict) else {}
        complete: dict[str, OperationView] = {}
        for entry in missing:
            item = _deref(document, paths.get(entry.path))
            op = item.get(entry.method) if isinstance(item, dict) else None
            if build.spent:
                view = _broken_view(entry.method, entry.path, op, entry.anchor)
                found[entry.cache_key] = dataclasses.replace(view, broken=False, deferred=True)
                continue
            left_out_before = build.examples.left_out
            try:
                view = _operation_model(build, entry.method, entry.path, op, entry.anchor)
            except Exception:  # a document we did not foresee: show what we can, never fail
                logger.exception(
                    "Could not render %s %s of %s", entry.method, entry.path, api_version
                )
                view = _broken_view(entry.method, entry.path, op, entry.anchor)
            found[entry.cache_key] = view
            if build.examples.left_out == left_out_before:
                complete[entry.cache_key] = view
        _cache_set_many(complete)
    return [found[entry.cache_key] for entry in entries]


def _within_page_budget(views: list[OperationView]) -> list[OperationView]:
    """What one page shows is bounded too: past MAX_PAGE_EXAMPLE_CHARS of examples and
    MAX_PAGE_SCHEMA_ROWS of schema rows, the rest are left out with a note. Without it, 100
    operations with full examples and tables made a page of 9 MB that took a second to
    render, cached or not."""
    chars_left = MAX_PAGE_EXAMPLE_CHARS
    rows_left = MAX_PAGE_SCHEMA_ROWS

    def example(found: ExampleView | None) -> ExampleView | None:
        nonlocal chars_left
        if found is None or found.left_out:
            return found
        if len(found.text) > chars_left:
            chars_left = 0
            return _left_out_view(found.name)
        chars_left -= len(found.text)
        return found

    def table(found: SchemaTable | None) -> SchemaTable | None:
        nonlocal rows_left
        if found is None or not found.rows:
            return found
        if len(found.rows) > rows_left:
            rows_left = 0
            return dataclasses.replace(found, rows=[], truncated=False, left_out=TABLE_LEFT_OUT)
        rows_left -= len(found.rows)
        return found

    shown = []
    for view in views:
        body = view.body
        if body is not None:
            body = dataclasses.replace(
                body, schema=table(body.schema), example=example(body.example)
            )
        responses = [
            dataclasses.replace(
                response, schema=table(response.schema), example=example(response.example)
            )
            for response in view.responses
        ]
        shown.append(dataclasses.replace(view, body=body, responses=responses))
    return shown


def reference_page(*, api_version: ApiVersion, reader: Reader, query: str = "") -> ReferencePage:
    """The whole reference of one version, filtered by `query` (operationId, summary,
    method, path and tags must contain every word)."""
    product = api_version.product
    query = query.strip()[:MAX_SEARCH_CHARS]
    sandbox_url = reader.sandbox_url(product.code, api_version.version)
    index = page_index(api_version)
    matching = [e for e in index.entries if not query or matches(query, e.search_text)]
    capped = len(matching) > MAX_OPERATIONS
    entries = matching[:MAX_OPERATIONS]
    endpoints = {(e.method, e.path_template): e for e in api_version.endpoints.all()}

    sections: dict[str, TagSection] = {
        name: TagSection(name=name, anchor=anchor, description=description)
        for name, anchor, description in index.sections
    }
    views = _within_page_budget(operation_views(api_version, entries))
    for entry, view in zip(entries, views, strict=True):
        view = _for_reader(
            view, endpoints.get((entry.method.upper(), entry.path)), sandbox_url, reader.api_key
        )
        section = sections.setdefault(
            entry.tag,
            TagSection(name=entry.tag, anchor=f"tag-{slug(entry.tag)}", description=mark_safe("")),
        )
        section.operations.append(view)
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
        title=index.title or api_version.title or product.name,
        api_version_label=index.api_version_label,
        description=index.description,
        servers=index.servers,
        sandbox_url=sandbox_url,
        security=index.security,
        sections=ordered,
        total_operations=len(index.entries),
        shown_operations=len(entries),
        capped=capped,
        query=query,
        versions=version_choices(api_version),
        version_status=version_status(api_version),
        gate_errors=sorted(gate_errors.items()),
    )
