"""Code samples for one operation: curl, Python (requests) and JavaScript (fetch).

A sample is the first call a reader makes, so it must run as pasted: every sample is built
from one `SampleRequest` (the sandbox URL with path parameters filled from the document's
examples and the required query parameters, the reader's own test key, the JSON example
body for writes), and each language only spells that request. Values are quoted for their
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
MAX_BODY_CHARS = 20_000  # a larger example body is replaced by an empty object in samples
JSON_TYPES = ("application/json", "application/problem+json")


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

    @property
    def full_url(self) -> str:
        return f"{self.url}?{urlencode(self.query)}" if self.query else self.url

    @property
    def json_body(self) -> bool:
        return self.has_body and is_json(self.media_type)


@dataclass(frozen=True)
class Sample:
    language: str  # curl, python, javascript
    label: str
    code: str
    lexer: str  # the Pygments lexer that colours it


def is_json(media_type: str | None) -> bool:
    if not media_type:
        return False
    base = media_type.split(";")[0].strip().lower()
    return base in JSON_TYPES or base.endswith("+json")


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
    document: dict, method: str, path_template: str, *, base_url: str, api_key: str
) -> SampleRequest:
    """The request the samples make: the operation against `base_url` with the reader's key."""
    op = openapi_doc.operation(document, method, path_template) or {}
    params = openapi_doc.parameters(document, method, path_template)
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
    media_type = body = None
    has_body = False
    found = openapi_doc.request_body(document, op)
    if found is not None and method.upper() not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        media_type, _schema, _required, example = found
        has_body = True
        if is_json(media_type):
            body = example if example is not None else {}
            if len(json.dumps(body, default=str)) > MAX_BODY_CHARS:
                body = {}
        else:
            body = example if isinstance(example, str) else value_text(example)
            body = body[:MAX_BODY_CHARS]
        headers.append(("Content-Type", media_type))
    _status, response_type, _body = openapi_doc.success_response(document, op)
    return SampleRequest(
        method=method.upper(),
        url=base_url.rstrip("/") + fill_path(path_template, path_values),
        query=query,
        headers=headers,
        media_type=media_type,
        body=body,
        has_body=has_body,
        response_is_json=is_json(response_type),
    )


def body_text(request: SampleRequest, indent: int | None = None) -> str:
    if not request.has_body:
        return ""
    if request.json_body:
        return json.dumps(request.body, indent=indent, ensure_ascii=False, default=str)
    return str(request.body)


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
    if request.has_body:
        lines.append(f"--data-raw {shlex.quote(body_text(request, indent=2))}")
    return " \\\n  ".join(lines)


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
    if request.json_body:
        headers.pop("Content-Type", None)  # requests sets it for json=
    lines.append(f"    headers={_python_literal(headers)},")
    if request.json_body:
        lines.append(f"    json={_python_literal(request.body)},")
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
    lines = [f"const response = await fetch({_js_string(request.full_url)}, {{"]
    lines.append(f"  method: {_js_string(request.method)},")
    lines.append("  headers: {")
    for name, value in request.headers:
        lines.append(f"    {_js_string(name)}: {_js_string(value)},")
    lines.append("  },")
    if request.json_body:
        body = json.dumps(request.body, indent=2, ensure_ascii=False, default=str)
        lines.append(f"  body: JSON.stringify({body.replace(chr(10), chr(10) + '  ')}),")
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
    document: dict, method: str, path_template: str, *, base_url: str, api_key: str
) -> list[Sample]:
    request = sample_request(document, method, path_template, base_url=base_url, api_key=api_key)
    return [
        Sample("curl", "curl", curl(request), "bash"),
        Sample("python", "Python", python(request), "python"),
        Sample("javascript", "JavaScript", javascript(request), "javascript"),
    ]
