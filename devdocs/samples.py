"""Code samples for one operation: curl, Python (requests) and JavaScript (fetch).

A sample is the first call a reader makes, so it must run as pasted: every sample is built
from one `SampleRequest` (the sandbox URL with path parameters filled from the document's
examples and the required query parameters, the reader's own test key, the example body
for writes), and each language only spells that request. A form body is sent as a form
(`application/x-www-form-urlencoded` urlencoded, `multipart/form-data` as parts whose
boundary the client writes), never as JSON under a form's Content-Type. Values are quoted for their
language (shlex for the shell, repr for Python, JSON for JavaScript), never pasted raw, so
an odd example or key cannot break out of a string.
"""

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from devdocs import openapi_doc

PATH_PARAMETER = re.compile(r"\{([^{}/]+)\}")
MAX_BODY_CHARS = 5_000  # a larger example body is replaced by an empty one in samples
JSON_TYPES = ("application/json", "application/problem+json")
FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"
_NOT_GIVEN = object()


@dataclass(frozen=True)
class SampleRequest:
    """What every sample sends, whatever the language."""

    method: str  # upper case
    url: str  # without the query string
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    media_type: str | None = None
    body: Any = None  # a JSON value for JSON media types, else text
    has_body: bool = False
    response_is_json: bool = True
    # The fields of a form body (urlencoded or multipart), in order; a list repeats its name.
    form: tuple[tuple[str, str], ...] = ()

    @property
    def full_url(self) -> str:
        return f"{self.url}?{urlencode(self.query)}" if self.query else self.url

    @property
    def json_body(self) -> bool:
        return self.has_body and is_json(self.media_type)

    @property
    def body_kind(self) -> str:
        """json, form (urlencoded fields), multipart (form-data parts), text or "" (none)."""
        if not self.has_body:
            return ""
        if is_json(self.media_type):
            return "json"
        base = media_base(self.media_type)
        if base == MULTIPART_TYPE:
            return "multipart"
        if base == FORM_TYPE and not isinstance(self.body, str):
            return "form"  # a string example is urlencoded text already: sent as it is
        return "text"


@dataclass(frozen=True)
class Sample:
    language: str  # curl, python, javascript
    label: str
    code: str
    lexer: str  # the Pygments lexer that colours it


def media_base(media_type: str | None) -> str:
    return (media_type or "").split(";")[0].strip().lower()


def is_json(media_type: str | None) -> bool:
    base = media_base(media_type)
    return bool(base) and (base in JSON_TYPES or base.endswith("+json"))


def form_fields(example: Any) -> tuple[tuple[str, str], ...]:
    """An object example as form fields: each property a field, a list one field per item
    (form bodies explode arrays), nested objects as JSON text."""
    if not isinstance(example, dict):
        return ()
    fields = []
    for name, value in example.items():
        for item in value if isinstance(value, list) else [value]:
            fields.append((str(name), value_text(item)))
    return tuple(fields)


def response_media_type(document: dict, op: dict) -> str | None:
    """The media type of the success answer (the first 2xx, else `default`), found without
    building its example: only whether it is JSON matters to a sample."""
    found = dict(openapi_doc.responses(document, op))
    ordered = sorted((s for s in found if s.isdigit() and s.startswith("2")), key=int)
    status = ordered[0] if ordered else ("default" if "default" in found else None)
    if status is None or status == "204":
        return None
    return pick_media(found[status].get("content"))[0]


def value_text(value: Any) -> str:
    """A parameter example as it goes into a URL or header."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def auth_header(document: dict, api_key: str) -> tuple[str, str]:
    """`Authorization: Bearer`, which the gate and the sandbox always accept; `X-API-Key`
    only when that is the one scheme the document declares."""
    components = document.get("components")
    schemes = components.get("securitySchemes") if isinstance(components, dict) else None
    schemes = [s for s in (schemes or {}).values() if isinstance(s, dict)]
    bearer = any(
        s.get("type") == "http" and str(s.get("scheme", "")).lower() == "bearer" for s in schemes
    )
    api_key_header = any(
        s.get("type") == "apiKey"
        and s.get("in") == "header"
        and str(s.get("name", "")).lower() == "x-api-key"
        for s in schemes
    )
    if api_key_header and not bearer:
        return "X-API-Key", api_key
    return "Authorization", f"Bearer {api_key}"


def fill_path(path_template: str, values: dict[str, Any]) -> str:
    """The path with each `{name}` replaced by its example, percent-encoded."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        value = values.get(name)
        text = value_text(value) if value not in (None, "") else name
        return quote(text, safe="")

    return PATH_PARAMETER.sub(replace, path_template)


def sample_request(
    document: dict,
    method: str,
    path_template: str,
    *,
    base_url: str,
    api_key: str,
    parameters: list | None = None,
    body: Any = _NOT_GIVEN,
) -> SampleRequest:
    """The request the samples make: the operation against `base_url` with the reader's key.

    `parameters` (openapi_doc.parameters) and `body` (openapi_doc.request_body's answer, or
    None) may be passed when the caller has them already: building an example from a large
    schema is the costly part, and the reference and the collections need it once, not twice.
    """
    op = openapi_doc.operation(document, method, path_template) or {}
    params = (
        parameters
        if parameters is not None
        else openapi_doc.parameters(document, method, path_template)
    )
    path_values = {p.name: p.example for p in params if p.location == "path"}
    query = [
        (p.name, value_text(p.example)) for p in params if p.location == "query" and p.required
    ]
    headers = [auth_header(document, api_key)]
    taken = {headers[0][0].lower(), "content-type", "accept"}
    for p in params:
        if p.location == "header" and p.required and p.name.lower() not in taken:
            headers.append((p.name, value_text(p.example)))
            taken.add(p.name.lower())
    media_type = None
    sent: Any = None
    has_body = False
    form: tuple[tuple[str, str], ...] = ()
    found = openapi_doc.request_body(document, op) if body is _NOT_GIVEN else body
    if found is not None and method.upper() not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        media_type, _schema, _required, example = found
        has_body = True
        base = media_base(media_type)
        if is_json(media_type):
            sent = example if example is not None else {}
            if len(json.dumps(sent, default=str)) > MAX_BODY_CHARS:
                sent = {}
        elif base in (FORM_TYPE, MULTIPART_TYPE) and not isinstance(example, str):
            sent = example if isinstance(example, dict) else {}
            form = form_fields(sent)
            if sum(len(name) + len(value) for name, value in form) > MAX_BODY_CHARS:
                sent, form = {}, ()
        else:
            sent = example if isinstance(example, str) else value_text(example)
            sent = sent[:MAX_BODY_CHARS]
        if base != MULTIPART_TYPE:
            # A multipart body's Content-Type carries the boundary the client makes up: set
            # by hand, it would name none and the server could not split the parts.
            headers.append(("Content-Type", media_type))
    return SampleRequest(
        method=method.upper(),
        url=base_url.rstrip("/") + fill_path(path_template, path_values),
        query=query,
        headers=headers,
        media_type=media_type,
        body=sent,
        has_body=has_body,
        response_is_json=is_json(response_media_type(document, op)),
        form=form,
    )


def body_text(request: SampleRequest, indent: int | None = None) -> str:
    """The body as the bytes on the wire would read (a urlencoded form encoded; a multipart
    body has no text of its own, its parts are `request.form`)."""
    if not request.has_body:
        return ""
    if request.json_body:
        return json.dumps(request.body, indent=indent, ensure_ascii=False, default=str)
    if request.body_kind == "form":
        return urlencode(list(request.form))
    if request.body_kind == "multipart":
        return ""
    return str(request.body)


def _curl_form_part(name: str, value: str) -> str:
    """`-F name=value`, or `--form-string` when curl would read the value as a file (`@`,
    `<`) or as part options (`;type=`...): --form-string sends it exactly as written."""
    if value.startswith(("@", "<")) or ";" in value or ";" in name or "=" in name:
        return f"--form-string {shlex.quote(f'{name}={value}')}"
    return f"-F {shlex.quote(f'{name}={value}')}"


# --- Languages -----------------------------------------------------------------------------
def curl(request: SampleRequest) -> str:
    lines = ["curl"]
    if request.method == "HEAD":
        lines[0] += " --head"
    elif request.method != "GET":
        lines[0] += f" -X {request.method}"
    lines[0] += f" {shlex.quote(request.full_url)}"
    for name, value in request.headers:
        lines.append(f"-H {shlex.quote(f'{name}: {value}')}")
    kind = request.body_kind
    if kind == "form":
        # curl encodes each value; the name goes as written, so it is encoded here.
        for name, value in request.form:
            lines.append(
                f"--data-urlencode {shlex.quote(f'{quote(name, safe=_NAME_SAFE)}={value}')}"
            )
    elif kind == "multipart":
        lines.extend(_curl_form_part(name, value) for name, value in request.form)
    elif request.has_body:
        lines.append(f"--data-raw {shlex.quote(body_text(request, indent=2))}")
    return " \\\n  ".join(lines)


_NAME_SAFE = "-._~"


def _repeats(fields: tuple[tuple[str, str], ...]) -> bool:
    return len({name for name, _ in fields}) < len(fields)


def _field_literal(fields: tuple[tuple[str, str], ...]) -> Any:
    """Form fields for requests' data=: a dict, or a list of pairs when a name repeats."""
    return [list(pair) for pair in fields] if _repeats(fields) else dict(fields)


def _python_literal(value: Any, level: int = 1) -> str:
    """A JSON value as Python source (True/None where JSON has true/null), one item a line
    unless it fits on one, indented four spaces a level like the call around it."""
    if isinstance(value, dict | list) and value:
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if isinstance(value, dict):
            parts = [f"{key!r}: {_python_literal(item, level + 1)}" for key, item in value.items()]
        else:
            parts = [_python_literal(item, level + 1) for item in value]
        compact = opening + ", ".join(parts) + closing
        if len(compact) + 4 * level <= 80 and "\n" not in compact:
            return compact
        inner = "    " * (level + 1)
        lines = "".join(f"{inner}{part},\n" for part in parts)
        return f"{opening}\n{lines}{'    ' * level}{closing}"
    if isinstance(value, tuple):
        items = [_python_literal(item, level + 1) for item in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return repr(value)


def python(request: SampleRequest) -> str:
    function = request.method.lower()
    known = ("get", "post", "put", "patch", "delete", "head", "options")
    call = f"requests.{function}(" if function in known else "requests.request("
    lines = ["import requests", "", f"response = {call}"]
    if function not in known:
        lines.append(f"    {request.method!r},")
    lines.append(f"    {request.url!r},")
    if request.query:
        lines.append(f"    params={_python_literal(dict(request.query))},")
    headers = dict(request.headers)
    kind = request.body_kind
    if kind in ("json", "form"):
        headers.pop("Content-Type", None)  # requests sets it for json= and for data=dict
    lines.append(f"    headers={_python_literal(headers)},")
    if kind == "json":
        lines.append(f"    json={_python_literal(request.body)},")
    elif kind == "form":
        lines.append(f"    data={_python_literal(_field_literal(request.form))},")
    elif kind == "multipart":
        # (None, value): a plain field, no filename; requests writes the boundary.
        parts = [(name, (None, value)) for name, value in request.form]
        lines.append(
            f"    files={_python_literal(parts if _repeats(request.form) else dict(parts))},"
        )
    elif request.has_body:
        lines.append(f"    data={body_text(request)!r}.encode(),")
    lines.append("    timeout=10,")
    lines.append(")")
    if request.response_is_json:
        lines.append("print(response.status_code, response.json() if response.content else None)")
    else:
        lines.append("print(response.status_code, response.text)")
    return "\n".join(lines)


def _js_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def javascript(request: SampleRequest) -> str:
    kind = request.body_kind
    lines = []
    if kind == "multipart":
        lines.append("const form = new FormData();")
        for name, value in request.form:
            lines.append(f"form.append({_js_string(name)}, {_js_string(value)});")
    lines.append(f"const response = await fetch({_js_string(request.full_url)}, {{")
    lines.append(f"  method: {_js_string(request.method)},")
    lines.append("  headers: {")
    for name, value in request.headers:
        if kind == "form" and name.lower() == "content-type":
            continue  # fetch sets it for URLSearchParams (and FormData, with the boundary)
        lines.append(f"    {_js_string(name)}: {_js_string(value)},")
    lines.append("  },")
    if kind == "json":
        body = json.dumps(request.body, indent=2, ensure_ascii=False, default=str)
        lines.append(f"  body: JSON.stringify({body.replace(chr(10), chr(10) + '  ')}),")
    elif kind == "form":
        pairs = json.dumps([list(pair) for pair in request.form], ensure_ascii=False)
        lines.append(f"  body: new URLSearchParams({pairs}),")
    elif kind == "multipart":
        lines.append("  body: form,")
    elif request.has_body:
        lines.append(f"  body: {_js_string(body_text(request))},")
    lines.append("});")
    if request.response_is_json:
        lines.append(
            "console.log(response.status, response.status === 204 ? null : await response.json());"
        )
    else:
        lines.append("console.log(response.status, await response.text());")
    return "\n".join(lines)


def samples_for(
    document: dict,
    method: str,
    path_template: str,
    *,
    base_url: str,
    api_key: str,
    request: SampleRequest | None = None,
) -> list[Sample]:
    if request is None:
        request = sample_request(
            document, method, path_template, base_url=base_url, api_key=api_key
        )
    return [
        Sample("curl", "curl", curl(request), "bash"),
        Sample("python", "Python", python(request), "python"),
        Sample("javascript", "JavaScript", javascript(request), "javascript"),
    ]


# --- Examples within a budget --------------------------------------------------------------
def pick_media(content: dict) -> tuple[str | None, dict]:
    """The media type a sample sends or shows: JSON first, then any +json, then the first
    (the same choice as openapi_doc's, so the docs show what the sandbox answers with)."""
    if not isinstance(content, dict) or not content:
        return None, {}
    for test in (lambda base: base in JSON_TYPES, lambda base: base.endswith("+json")):
        for media_type, media in content.items():
            if test(media_base(str(media_type))):
                return str(media_type), media if isinstance(media, dict) else {}
    media_type, media = next(iter(content.items()))
    return str(media_type), media if isinstance(media, dict) else {}


class ExampleSource:
    """The examples of one build (a reference page, a collection), each schema's made once
    and all of them within one budget of schema nodes.

    openapi_doc caps one generated example at EXAMPLE_BUDGET nodes, but a document may ask
    for thousands of them (1,000 operations, 30 responses each): without a budget for the
    whole build a legal upload made a collection take tens of seconds. The cost of an
    example is counted before it is made, by a cheap walk of the same schema nodes
    (`cost`); one that does not fit what is left is not made, and the caller says so."""

    def __init__(self, document: dict, node_budget: int):
        self.document = document
        self.nodes_left = node_budget
        self.nodes_counted = 0  # schema nodes the cost walks visited: the work done
        self.left_out = 0  # examples not made for want of budget
        self._memo: dict[int, tuple[Any, Any]] = {}
        self._resolved: dict[str, Any] = {}

    def _deref(self, node: Any) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str):
            return node
        if ref not in self._resolved:
            try:
                self._resolved[ref] = openapi_doc.deref(self.document, node)
            except openapi_doc.RefError:
                self._resolved[ref] = None
        return self._resolved[ref]

    def cost(self, schema: Any) -> int:
        """How many schema nodes openapi_doc's example of `schema` visits (at most its
        EXAMPLE_BUDGET): the same walk, without making values."""
        left = [openapi_doc.EXAMPLE_BUDGET]
        self._walk(schema, 0, frozenset(), left)
        return openapi_doc.EXAMPLE_BUDGET - left[0]

    def _walk(self, schema: Any, depth: int, refs: frozenset, left: list) -> None:
        if left[0] <= 0:
            return  # spent: nothing more is visited (so a walk counts at most the budget)
        left[0] -= 1
        self.nodes_counted += 1
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if isinstance(ref, str):
            if ref in refs:
                return
            refs = refs | {ref}
        schema = self._deref(schema)
        if not isinstance(schema, dict) or depth > openapi_doc.MAX_DEPTH:
            return
        if any(keyword in schema for keyword in ("example", "const", "default")):
            return
        for keyword in ("examples", "enum"):
            if isinstance(schema.get(keyword), list) and schema[keyword]:
                return
        if isinstance(schema.get("allOf"), list):
            for part in schema["allOf"]:
                self._walk(part, depth + 1, refs, left)
            if schema.get("properties"):
                own = {key: value for key, value in schema.items() if key != "allOf"}
                self._walk(own, depth + 1, refs, left)
            return
        for keyword in ("oneOf", "anyOf"):
            if isinstance(schema.get(keyword), list) and schema[keyword]:
                self._walk(schema[keyword][0], depth + 1, refs, left)
                return
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for sub in properties.values():
                self._walk(sub, depth + 1, refs, left)
        if isinstance(schema.get("items"), dict):
            self._walk(schema["items"], depth + 1, refs, left)

    def media(self, media: Any) -> tuple[Any, bool]:
        """(the media's example, was it left out for want of budget). The document's own
        `example`/`examples` cost nothing; one made from the schema is made once."""
        media = media if isinstance(media, dict) else {}
        examples = media.get("examples")
        if "example" in media or (isinstance(examples, dict) and examples):
            return openapi_doc.media_example(self.document, media), False
        schema = self._deref(media.get("schema"))
        if not isinstance(schema, dict):
            return openapi_doc.media_example(self.document, media), False
        found = self._memo.get(id(schema))
        if found is not None:
            return found[1], False
        cost = self.cost(schema)
        if cost > self.nodes_left:
            self.left_out += 1
            return None, True
        self.nodes_left -= cost
        value = openapi_doc.media_example(self.document, media)
        self._memo[id(schema)] = (schema, value)  # the schema is kept, so its id stays its own
        return value, False

    def request_body(self, op: dict) -> tuple[tuple[str, dict, bool, Any] | None, bool]:
        """openapi_doc.request_body's answer with the example from this source, and whether
        the example was left out."""
        body = self._deref(op.get("requestBody"))
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            return None, False
        media_type, media = pick_media(body["content"])
        if media_type is None:
            return None, False
        schema = self._deref(media.get("schema")) or {}
        example, left_out = self.media(media)
        return (media_type, schema, bool(body.get("required")), example), left_out

    def response_body(self, response: dict, status: int) -> tuple[int, str | None, Any, bool]:
        content = response.get("content")
        if not isinstance(content, dict) or not content or status == 204:
            return status, None, None, False
        media_type, media = pick_media(content)
        example, left_out = self.media(media)
        return status, media_type, example, left_out

    def success_response(self, op: dict) -> tuple[int, str | None, Any, bool]:
        """openapi_doc.success_response's answer (first 2xx, else default), budgeted."""
        found = openapi_doc.responses(self.document, op)
        ordered = sorted(
            (status for status, _ in found if status.isdigit() and status.startswith("2")),
            key=int,
        )
        table = dict(found)
        status = ordered[0] if ordered else ("default" if "default" in table else None)
        if status is None:
            return 200, None, None, False
        return self.response_body(table[status], 200 if status == "default" else int(status))
