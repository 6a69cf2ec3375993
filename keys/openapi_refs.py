"""Local references (`#/...`) of an OpenAPI document: followed, and checked at upload.

Only local references are accepted, so reading a stored document never fetches a URL.
"""

from collections.abc import Iterator
from typing import Any


class RefError(ValueError):
    """A `$ref` that is not local or points nowhere."""


def _pointer_parts(ref: str) -> list[str]:
    if not ref.startswith("#"):
        raise RefError(f"Only local references are supported, not '{ref}'.")
    pointer = ref[1:]
    if pointer in ("", "/"):
        return []
    if not pointer.startswith("/"):
        raise RefError(f"'{ref}' is not a JSON pointer.")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def lookup(document: dict, ref: str) -> Any:
    node: Any = document
    for part in _pointer_parts(ref):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise RefError(f"'{ref}' points to nothing in the document.")
    return node


def deref(document: dict, node: Any) -> Any:
    """The node with its `$ref` chain followed (only the top level)."""
    seen = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen:
            raise RefError(f"'{ref}' refers to itself.")
        seen.add(ref)
        node = lookup(document, ref)
    return node


def _walk_refs(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield where, ref
        for key, value in node.items():
            # Literal example data may hold anything, even a "$ref" key.
            if key == "example" or (key == "examples" and isinstance(value, list)):
                continue
            yield from _walk_refs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_refs(value, f"{where}[{index}]")


def check_refs(document: dict) -> list[dict]:
    """Problems with the document's references, each with the field where it is."""
    problems = []
    for where, ref in _walk_refs(document, "openapi"):
        try:
            deref(document, {"$ref": ref})
        except RefError as error:
            problems.append({"field": where, "detail": str(error)})
        if len(problems) >= 50:
            break
    return problems
