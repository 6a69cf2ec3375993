"""Matching a request path to an endpoint's path template, fast and unambiguously.

Templates are grouped by method and number of segments; within a group a literal segment
beats a parameter (so `/documents/search` wins over `/documents/{id}`), the way OpenAPI
says concrete paths are matched before templated ones.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def without_base_path(path: str, base_path: str) -> str:
    """Templates are matched without the servers' base path; callers may send it or not."""
    if base_path and (path == base_path or path.startswith(base_path + "/")):
        return path[len(base_path) :] or "/"
    return path


def _segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def _is_parameter(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


@dataclass(frozen=True)
class _Route(Generic[T]):
    segments: tuple[str | None, ...]  # None: a parameter
    specificity: tuple[int, ...]  # 0 for a literal segment, 1 for a parameter: lower wins
    target: T


class Router(Generic[T]):
    """`Router([(method, template, target), ...]).match(method, path) -> target | None`."""

    def __init__(self, routes: Iterable[tuple[str, str, T]]):
        self._routes: dict[tuple[str, int], list[_Route[T]]] = defaultdict(list)
        for method, template, target in routes:
            segments = tuple(None if _is_parameter(s) else s for s in _segments(template))
            specificity = tuple(0 if s is not None else 1 for s in segments)
            self._routes[(method.upper(), len(segments))].append(
                _Route(segments, specificity, target)
            )
        for routes_of_shape in self._routes.values():
            routes_of_shape.sort(key=lambda route: route.specificity)

    def match(self, method: str, path: str) -> T | None:
        segments = _segments(path.split("?", 1)[0])
        for route in self._routes.get((method.upper(), len(segments)), ()):
            if all(
                expected is None or expected == actual
                for expected, actual in zip(route.segments, segments, strict=True)
            ):
                return route.target
        return None
