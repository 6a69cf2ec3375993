"""The sandbox mock server (DOCS-3): a test key's call, decided by the real gate, answered
from the OpenAPI document.

A call to `/sandbox/<product>/<version>/<path>` is decided by the same `Gate.decide` as a
live call (same path matching, scopes, plan groups, blocks, rate limits, metering), so what a
developer learns in the sandbox holds in live. What the provider's API would do after the
gate (check the request, answer) is played from the version's document: parameters and
body are validated against their schemas, and the operation's example (or one generated from
its schema) is the answer. Nothing here builds HTTP responses: it returns a `SandboxAnswer`
that the view turns into one.

Order of checks, and why:
1. the product and version, from the gate's in-process catalog (no query, no rate limit
   spent on a typo in the URL);
2. the key's presence, and its environment read from its format: a live key is refused
   before the gate, so a sandbox call never meters, rate-limits or auto-blocks a live key;
3. the gate;
4. the request against the matched operation (after the gate, as the provider's own API
   would: an invalid call is still a metered call);
5. the response the caller asked for (`Prefer: code=...`, `Prefer: example=...`) or the
   first success response.
"""

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from common.problems import PROBLEM_CONTENT_TYPE, problem_body
from devdocs import openapi_doc
from keys.format import key_environment, key_is_well_formed
from keys.gate import Decision, Gate, VerifyInput
from keys.gate_api import decision_headers
from keys.models import ApiVersion, Endpoint
from tollgate.middleware import STATUS_BY_CODE, api_key_from

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # a request body larger than this is refused with 413
MAX_RESPONSE_BYTES = 1024 * 1024  # an example larger than this is not sent
MAX_ERRORS = 20  # schema violations listed in one problem
MAX_HEADER_VALUE = 1024
JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the sandbox (or the gate) sets itself: an example in the document never stands in
# for them. Retry-After is not among them: a `Prefer: code=429` answer carries the documented
# one, so a client's retry logic can be tried; on a real 429 the gate's wins.
OWN_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "ratelimit",
        "ratelimit-policy",
        "deprecation",
        "sunset",
        "x-request-id",
        "x-tollgate-sandbox",
        "preference-applied",
        "set-cookie",
    }
)
# OpenAPI: header parameters with these names are described elsewhere and ignored.
IGNORED_HEADER_PARAMETERS = frozenset({"accept", "content-type", "authorization"})

GATE_DETAILS = {
    "key_missing": "Send your test key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    "key_malformed": "This is not a Tollgate key (or it was mistyped: its checksum fails).",
    "key_invalid": "No such key.",
    "key_revoked": "This key was revoked.",
    "key_expired": "This key has expired (or its rotation grace period ended).",
    "ip_not_allowed": "Your address is outside this key's IP allow-list.",
    "endpoint_unknown": "No operation of this API version matches this method and path.",
    "endpoint_ambiguous": "More than one operation matches this path.",
    "endpoint_sunset": "This operation is past its sunset date and no longer answers.",
    "scope_missing": "This key lacks the scope this operation needs.",
    "endpoint_not_in_plan": "Your organization's plan does not include this operation.",
    "blocked": "This key, or your address, is blocked.",
    "rate_limited": "Rate limit reached; retry after `Retry-After` seconds.",
    "quota_exhausted": "This period's quota is used up.",
}


# --- What the view hands in, what it gets back ---------------------------------------------
@dataclass(frozen=True)
class SandboxCall:
    product: str
    version: str
    method: str  # upper case
    rest: str  # the path after /sandbox/<product>/<version>, starting with "/"
    headers: Mapping[str, str]  # names lower case
    query: Mapping[str, list[str]]
    cookies: Mapping[str, str]
    body: bytes
    ip: str | None
    request_id: str


@dataclass
class SandboxAnswer:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    decision: Decision | None = None  # the gate's, when it was asked

    @property
    def endpoint(self) -> Endpoint | None:
        """The matched endpoint of an allowed call: the one whose health is recorded."""
        if self.decision is None or not self.decision.allowed:
            return None
        return self.decision.endpoint


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str = "Request refused",
    headers: dict[str, str] | None = None,
    decision: Decision | None = None,
    **extra: Any,
) -> SandboxAnswer:
    """An RFC 9457 answer; the request id is the one the middleware put in X-Request-Id."""
    body = problem_body(status=status, code=code, title=title, detail=detail, **extra)
    return SandboxAnswer(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
        decision=decision,
    )


# --- The call ------------------------------------------------------------------------------
def find_version(gate: Gate, product: str, version: str) -> ApiVersion | None:
    """The live (not sunset) version from the gate's catalog: the same set the gate matches
    against, held in memory, so an unknown product costs no query and no rate limit."""
    for loaded in gate.catalog.versions():
        api_version = loaded.api_version
        if api_version.product.code == product and api_version.version == version:
            return api_version
    return None


def sandbox_call(call: SandboxCall, *, gate: Gate) -> SandboxAnswer:
    api_version = find_version(gate, call.product, call.version)
    if api_version is None:
        return problem(
            404,
            "sandbox_not_found",
            f"No live API version '{call.version}' of a product '{call.product}'. "
            "The reference at /docs/ lists the products and versions.",
            title="Not found",
        )
    key = api_key_from(dict(call.headers))
    if not key:
        return problem(
            STATUS_BY_CODE["key_missing"],
            "key_missing",
            GATE_DETAILS["key_missing"],
            headers={"WWW-Authenticate": 'Bearer realm="sandbox"'},
        )
    if key_is_well_formed(key) and key_environment(key) == "live":
        return problem(
            403,
            "sandbox_requires_test_key",
            "The sandbox takes test keys (tg_test_…) only; live keys call the live API. "
            "This call was not counted against the live key.",
        )
    path = (api_version.base_path or "") + call.rest
    decision = gate.decide(
        VerifyInput(
            key=key[:200],
            method=call.method,
            path=path,
            ip=call.ip,
            product=call.product,
            version=call.version,
            request_id=call.request_id,
        )
    )
    headers = decision_headers(decision)
    if not decision.allowed:
        return _denial(decision, headers, call, path)
    try:
        answer = mock_answer(api_version, decision.endpoint, call)
    except Exception:  # an odd document must never turn into a 500
        logger.exception(
            "sandbox could not mock %s %s of %s %s",
            call.method,
            call.rest,
            call.product,
            call.version,
        )
        answer = SandboxAnswer(status=200, body=b"{}", content_type="application/json")
    answer.decision = decision
    answer.headers = {**answer.headers, **headers}
    return answer


def _denial(decision: Decision, headers: dict[str, str], call: SandboxCall, path: str):
    """The status and headers the provider-side middleware would answer with."""
    code = decision.code
    detail = GATE_DETAILS.get(code, f"Refused: {code}.")
    extra: dict[str, Any] = {}
    endpoint = decision.endpoint
    if code in ("endpoint_unknown", "endpoint_ambiguous"):
        detail = f"{detail} ({call.method} {path} in {call.product} {call.version})"
    if endpoint is not None and code in ("scope_missing", "endpoint_not_in_plan"):
        detail = f"{detail} (group '{endpoint.group}')"
        extra["group"] = endpoint.group
    if decision.block is not None:
        extra["block"] = {
            "reason_code": decision.block.reason_code,
            "expires_at": decision.block.expires_at.isoformat()
            if decision.block.expires_at
            else None,
        }
    status = STATUS_BY_CODE.get(code, 403)
    if status == 401:
        headers = {**headers, "WWW-Authenticate": 'Bearer realm="sandbox"'}
    return problem(status, code, detail, headers=headers, decision=decision, **extra)


# --- Validating the request ----------------------------------------------------------------
def _format_checker() -> FormatChecker:
    """Draft 2020-12's checkers (uuid, date, email, ip...) plus date-time, which jsonschema
    checks only with an extra package we do not need: Python parses RFC 3339 itself."""
    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)

    def date_time(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        if not re.match(
            r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$", instance
        ):
            return False
        datetime.fromisoformat(instance.replace("z", "+00:00").replace("Z", "+00:00"))
        return True

    checker.checks("date-time", raises=ValueError)(date_time)
    return checker


FORMATS = _format_checker()


def _schema_errors(
    document: dict,
    schema: dict,
    instance: Any,
    location: str,
    name: str | None,
    place: tuple[str, ...],
) -> list[dict]:
    """Violations of `schema` by `instance`, each with where it is and the validator's
    message. A schema the validator cannot use (a bad type name, a reference to nothing) is
    the provider's mistake, not the caller's: it is logged and the value is let through."""
    if not isinstance(schema, dict) or not schema:
        return []
    try:
        validator = validator_for(document, schema, place)
        found = sorted(validator.iter_errors(instance), key=_error_order)
    except Exception:
        logger.warning("sandbox: unusable schema at %s %s", location, name, exc_info=True)
        return []
    errors = []
    for error in found[:MAX_ERRORS]:
        where = name if name is not None else error.json_path
        if name is not None and error.path:
            where = name + error.json_path[1:]
        errors.append(
            {
                "location": location,
                "field": where,
                "code": str(error.validator),
                "detail": error.message,
            }
        )
    return errors


def _error_order(error: Any) -> tuple[str, ...]:
    """Errors in document order; paths mix names and indexes, so compare them as text."""
    return tuple(str(part) for part in error.path)


# Compiled request validators, per API version and place in its document. A version's
# document never changes once uploaded (a change is a new version, with a new id), so an
# entry never goes stale; the bounds only cap memory. The converted document that every
# `$ref` resolves against is held once per version and shared by all its validators.
_VALIDATORS: dict[tuple[str, ...], Draft202012Validator] = {}
MAX_CACHED_VALIDATORS = 2000
_ROOTS: dict[str, tuple[str, dict, Registry]] = {}
MAX_CACHED_ROOTS = 50


def _root_for(document: dict, version_id: str) -> tuple[str, dict, Registry]:
    found = _ROOTS.get(version_id)
    if found is None:
        uri = f"urn:tollgate:api-version:{version_id}"
        root = _request_view(openapi_doc.validation_root(document))
        registry = Registry().with_resource(uri, DRAFT202012.create_resource(root))
        if len(_ROOTS) >= MAX_CACHED_ROOTS:
            _ROOTS.clear()
        found = _ROOTS[version_id] = (uri, root, registry)
    return found


def _absolute_refs(node: Any, uri: str) -> Any:
    """Local references of a schema taken out of its document, made to point into it."""
    if isinstance(node, list):
        return [_absolute_refs(item, uri) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _absolute_refs(value, uri) for key, value in node.items()}
    ref = result.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        result["$ref"] = uri + ref
    return result


def validator_for(document: dict, schema: dict, place: tuple[str, ...]) -> Draft202012Validator:
    """The validator of `schema` as a request schema, its references resolved in the
    version's shared converted document (`place[0]` is the version's id)."""
    validator = _VALIDATORS.get(place)
    if validator is None:
        uri, root, registry = _root_for(document, place[0])
        own = _request_view(openapi_doc.convert_schema(document, schema), root=root)
        validator = Draft202012Validator(
            _absolute_refs(own, uri), registry=registry, format_checker=FORMATS
        )
        if len(_VALIDATORS) >= MAX_CACHED_VALIDATORS:
            _VALIDATORS.clear()
        _VALIDATORS[place] = validator
    return validator


def _request_view(schema: dict, root: dict | None = None) -> dict:
    """OpenAPI: a required property that is `readOnly` is required in responses only, so a
    request without it is valid (e.g. `id`, assigned by the API). Applied to every object
    schema of `schema`; references are looked up in `root` (default: `schema` itself)."""
    root = schema if root is None else root

    def resolve(node: Any) -> Any:
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            try:
                return openapi_doc.lookup(root, node["$ref"])
            except openapi_doc.RefError:
                return node
        return node

    seen: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict) or id(node) in seen:
            return
        seen.add(id(node))
        properties = node.get("properties")
        required = node.get("required")
        if isinstance(properties, dict) and isinstance(required, list):
            node["required"] = [
                name
                for name in required
                if not (
                    isinstance(resolve(properties.get(name)), dict)
                    and resolve(properties.get(name)).get("readOnly") is True
                )
            ]
        for value in node.values():
            walk(value)

    walk(schema)
    return schema


def _schema_type(schema: dict) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    return kind if isinstance(kind, str) else None


def coerce(raw: str, schema: dict) -> Any:
    """A path, query or header value (always text) as the type its schema says, so that the
    schema can check it; text that is not that type stays text and the validator names it."""
    kind = _schema_type(schema)
    if kind == "integer":
        if re.fullmatch(r"[+-]?\d{1,30}", raw.strip()):
            return int(raw)
        return raw
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            return raw
        if not math.isfinite(number):
            return raw
        return int(number) if re.fullmatch(r"[+-]?\d{1,30}", raw.strip()) else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw.strip().lower(), raw)
    if kind == "null" and raw == "":
        return None
    if kind == "object":
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        return value if isinstance(value, dict) else raw
    return raw


def _coerce_array(values: list[str], schema: dict, document: dict) -> list:
    """Repeated (`?tag=a&tag=b`, the OpenAPI default) or comma-separated (`?tag=a,b`)."""
    if len(values) == 1 and "," in values[0]:
        values = values[0].split(",")
    items = openapi_doc.deref(document, schema.get("items")) or {}
    items = items if isinstance(items, dict) else {}
    return [coerce(value, items) for value in values]


def path_parameters(template: str, path: str) -> dict[str, str]:
    """The values of `{name}` in `template` found in `path` (which has no base path)."""
    pattern = ""
    names: list[str] = []
    for index, part in enumerate(re.split(r"(\{[^{}/]+\})", template)):
        if index % 2:
            names.append(part[1:-1])
            pattern += f"(?P<p{len(names) - 1}>[^/]+)"
        else:
            pattern += re.escape(part)
    segments = [segment for segment in path.split("/") if segment]
    match = re.fullmatch(pattern.rstrip("/") or "/", "/" + "/".join(segments))
    if match is None:
        return {}
    return {name: match.group(f"p{index}") for index, name in enumerate(names)}


def validate_parameters(
    document: dict, version_id: str, endpoint: Endpoint, call: SandboxCall, path: str
) -> list[dict]:
    values_in_path = path_parameters(endpoint.path_template, path)
    errors: list[dict] = []
    for parameter in openapi_doc.parameters(document, endpoint.method, endpoint.path_template):
        location, name, schema = parameter.location, parameter.name, parameter.schema
        present = True
        if location == "path":
            raw: Any = values_in_path.get(name)
            present = raw is not None
        elif location == "query":
            found = list(call.query.get(name, []))
            present = bool(found)
            raw = found[-1] if found else None
            if present and _schema_type(schema) == "array":
                raw = _coerce_array(found, schema, document)
        elif location == "header":
            if name.lower() in IGNORED_HEADER_PARAMETERS:
                continue
            raw = call.headers.get(name.lower())
            present = raw is not None
        elif location == "cookie":
            raw = call.cookies.get(name)
            present = raw is not None
        else:
            continue
        if not present:
            if parameter.required:
                errors.append(
                    {
                        "location": location,
                        "field": name,
                        "code": "required",
                        "detail": f"The {location} parameter '{name}' is required.",
                    }
                )
            continue
        value = coerce(raw, schema) if isinstance(raw, str) else raw
        place = (version_id, endpoint.method, endpoint.path_template, location, name)
        errors.extend(_schema_errors(document, schema, value, location, name, place))
    return errors


def _media_matches(pattern: str, media_type: str) -> bool:
    pattern = pattern.split(";")[0].strip().lower()
    if pattern in ("*/*", media_type):
        return True
    return pattern.endswith("/*") and media_type.startswith(pattern[:-1])


def validate_body(
    document: dict, version_id: str, endpoint: Endpoint, op: dict, call: SandboxCall
) -> SandboxAnswer | list[dict]:
    """A problem (415, 400) to answer at once, or the schema violations of the body."""
    body_spec = openapi_doc.deref(document, op.get("requestBody"))
    if not isinstance(body_spec, dict):
        return []  # the operation takes no body: one sent is ignored, as most APIs do
    content = body_spec.get("content") if isinstance(body_spec.get("content"), dict) else {}
    if not call.body.strip():
        if body_spec.get("required"):
            return [
                {
                    "location": "body",
                    "field": "$",
                    "code": "required",
                    "detail": "A request body is required.",
                }
            ]
        return []
    if not content:
        return []
    sent = (call.headers.get("content-type") or "").split(";")[0].strip().lower()
    pattern, media = next(
        (
            (pattern, openapi_doc.deref(document, value) or {})
            for pattern, value in content.items()
            if sent and _media_matches(pattern, sent)
        ),
        (None, None),
    )
    if media is None:
        accepted = list(content)
        return problem(
            415,
            "unsupported_media_type",
            f"This operation takes {' or '.join(accepted)}; "
            f"send the body with Content-Type: {accepted[0]}"
            + (f" (this request said {sent})." if sent else " (this request sent none)."),
            title="Unsupported media type",
            accepted=accepted,
        )
    if not JSON_MEDIA.match(sent):
        return []  # forms, files, text: the sandbox checks JSON bodies only
    try:
        instance = json.loads(call.body.decode("utf-8"))
    except UnicodeDecodeError:
        return problem(
            400, "malformed_request", "The body is not UTF-8.", title="Malformed request body"
        )
    except RecursionError:
        return problem(
            400,
            "malformed_request",
            "The JSON is nested too deeply.",
            title="Malformed request body",
        )
    except ValueError as error:
        return problem(
            400,
            "malformed_request",
            f"The body is not valid JSON: {error}.",
            title="Malformed request body",
        )
    schema = openapi_doc.deref(document, media.get("schema")) if isinstance(media, dict) else None
    place = (version_id, endpoint.method, endpoint.path_template, "body", str(pattern))
    return _schema_errors(document, schema or {}, instance, "body", None, place)


# --- Choosing and building the response ----------------------------------------------------
@dataclass(frozen=True)
class Preference:
    code: int | None = None
    example: str | None = None


def parse_prefer(value: str) -> Preference | str:
    """`Prefer: code=404`, `Prefer: example=notFound`, or both (comma or semicolon apart),
    as Prism reads them; other preferences are ignored. A string is what was wrong."""
    code, example = None, None
    for token in re.split(r"[,;]", value or ""):
        name, _, raw = token.strip().partition("=")
        name, raw = name.strip().lower(), raw.strip().strip('"')
        if name == "code":
            if not re.fullmatch(r"[2-5]\d\d", raw):
                return f"Prefer: code={raw} is not a status code from 200 to 599."
            code = int(raw)
        elif name == "example":
            if not raw or len(raw) > 200:
                return "Prefer: example= needs the name of one of the response's examples."
            example = raw
    return Preference(code=code, example=example)


def choose_response(
    document: dict, op: dict, preference: Preference
) -> tuple[int, dict | None] | SandboxAnswer:
    """(status, response object) to answer with: the preferred code (exact, else its range
    like `4XX`), else the lowest 2xx, else `2XX`, else `default` (as 200)."""
    documented = openapi_doc.responses(document, op)
    table = {status.upper(): response for status, response in documented}
    if preference.code is not None:
        wanted = str(preference.code)
        for candidate in (wanted, wanted[0] + "XX"):
            if candidate in table:
                return preference.code, table[candidate]
        listed = ", ".join(status for status, _ in documented) or "none"
        return problem(
            400,
            "prefer_code_undocumented",
            f"Prefer: code={wanted} is not a documented response of this operation "
            f"(documented: {listed}).",
            title="Preference not documented",
            documented=[status for status, _ in documented],
        )
    successes = sorted((s for s in table if s.isdigit() and s.startswith("2")), key=int)
    if successes:
        return int(successes[0]), table[successes[0]]
    for fallback in ("2XX", "DEFAULT"):
        if fallback in table:
            return 200, table[fallback]
    return 200, None


def _pick_media(content: dict, accept: str) -> tuple[str, dict]:
    """The media type the caller accepts, JSON first when it accepts anything."""
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    items = [(media_type, media) for media_type, media in content.items()]
    for want in wanted:
        if want in ("*/*", ""):
            break
        for media_type, media in items:
            if _media_matches(want, media_type.split(";")[0].strip().lower()):
                return media_type, media
    for media_type, media in items:
        if JSON_MEDIA.match(media_type.split(";")[0].strip().lower()):
            return media_type, media
    return items[0]


def _header_value(value: Any) -> str | None:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"))
    elif value is None:
        return None
    text = str(value)
    if len(text) > MAX_HEADER_VALUE or any(ord(char) < 32 or ord(char) > 126 for char in text):
        return None
    return text


def documented_headers(document: dict, response: dict) -> dict[str, str]:
    """The response's own headers (e.g. Location), with their examples."""
    result = {}
    headers = response.get("headers")
    for name, spec in (headers if isinstance(headers, dict) else {}).items():
        if not isinstance(name, str) or not HEADER_NAME.match(name) or name.lower() in OWN_HEADERS:
            continue
        spec = openapi_doc.deref(document, spec)
        if not isinstance(spec, dict):
            continue
        if "example" in spec:
            value = spec["example"]
        elif isinstance(spec.get("examples"), dict) and spec["examples"]:
            first = openapi_doc.deref(document, next(iter(spec["examples"].values())))
            value = first.get("value") if isinstance(first, dict) else None
        else:
            value = openapi_doc.example_for_schema(
                document, openapi_doc.deref(document, spec.get("schema")) or {}
            )
        text = _header_value(value)
        if text is not None:
            result[name] = text
    return result


def render_response(
    document: dict, status: int, response: dict | None, preference: Preference, accept: str
) -> SandboxAnswer:
    """The answer's body and type. No response documented: 200 `{}`. A documented response
    without content, and 204/304: no body. JSON media: the example as JSON; other media: a
    text example as it is, anything else as JSON."""
    if response is None:
        return SandboxAnswer(status=status, body=b"{}", content_type="application/json")
    headers = documented_headers(document, response)
    content = response.get("content")
    if status in (204, 304) or not isinstance(content, dict) or not content:
        if preference.example is not None:
            return _unknown_example(preference.example, [])
        return SandboxAnswer(status=status, headers=headers)
    media_type, media = _pick_media(content, accept)
    media = openapi_doc.deref(document, media) if isinstance(media, dict) else {}
    media = media if isinstance(media, dict) else {}
    if preference.example is not None:
        examples = media.get("examples") if isinstance(media.get("examples"), dict) else {}
        if preference.example not in examples:
            return _unknown_example(preference.example, sorted(examples))
        headers["Preference-Applied"] = f"example={preference.example}"
    example = openapi_doc.media_example(document, media, preference.example)
    bare_type = media_type.split(";")[0].strip().lower()
    is_json = bool(JSON_MEDIA.match(bare_type))
    if isinstance(example, str) and not is_json:
        body = example.encode("utf-8")
        content_type = media_type if "*" not in bare_type else "text/plain; charset=utf-8"
    else:
        if example is None and is_json:
            example = {}
        body = json.dumps(example, ensure_ascii=False, default=str).encode("utf-8")
        content_type = media_type if "*" not in bare_type else "application/json"
    if len(body) > MAX_RESPONSE_BYTES:
        return problem(
            502,
            "sandbox_example_too_large",
            f"The documented example of this response is larger than the sandbox sends "
            f"({MAX_RESPONSE_BYTES} bytes); the provider can give the operation a smaller "
            "`example`.",
            title="Example too large",
        )
    return SandboxAnswer(status=status, body=body, content_type=content_type, headers=headers)


def _unknown_example(name: str, names: list[str]) -> SandboxAnswer:
    listed = ", ".join(names) if names else "none"
    return problem(
        400,
        "prefer_example_unknown",
        f"Prefer: example={name} is not an example of this response (examples: {listed}).",
        title="Preference not documented",
        examples=names,
    )


def mock_answer(api_version: ApiVersion, endpoint: Endpoint, call: SandboxCall) -> SandboxAnswer:
    """After the gate allowed the call: check it against its operation, then answer it."""
    document = api_version.document if isinstance(api_version.document, dict) else {}
    version_id = str(api_version.id)
    op = openapi_doc.operation(document, endpoint.method, endpoint.path_template) or {}
    preference = parse_prefer(call.headers.get("prefer", ""))
    if isinstance(preference, str):
        return problem(400, "prefer_invalid", preference, title="Invalid preference")
    errors = validate_parameters(document, version_id, endpoint, call, call.rest)
    body_result = validate_body(document, version_id, endpoint, op, call)
    if isinstance(body_result, SandboxAnswer):
        return body_result
    errors.extend(body_result)
    if errors:
        first = errors[0]
        return problem(
            422,
            "request_invalid",
            f"{first['location']} {first['field']}: {first['detail']}",
            title="The request does not match the API's schema",
            errors=errors[:MAX_ERRORS],
        )
    chosen = choose_response(document, op, preference)
    if isinstance(chosen, SandboxAnswer):
        return chosen
    status, response = chosen
    answer = render_response(document, status, response, preference, call.headers.get("accept", ""))
    if preference.code is not None and answer.status == preference.code:
        applied = answer.headers.get("Preference-Applied")
        answer.headers["Preference-Applied"] = f"code={preference.code}" + (
            f", {applied}" if applied else ""
        )
    return answer
