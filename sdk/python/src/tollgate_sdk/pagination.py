"""Cursor pages: one page as a value, and generators that follow `next` to the end.

The API's lists are `{"next": url|null, "previous": url|null, "results": [...]}`, newest
first, and the cursor is opaque: clients pass it back, never build it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tollgate_sdk._http import cursor_from

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    results: list[T]
    next_cursor: str | None = None
    previous_cursor: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    def __iter__(self) -> Iterator[T]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Page[T]:
        return cls(
            results=list(body.get("results", [])),
            next_cursor=cursor_from(body.get("next")),
            previous_cursor=cursor_from(body.get("previous")),
            raw=body,
        )


def iterate_pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of every page, fetching the next page only when the caller gets there."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.results
        if page.next_cursor is None or page.next_cursor == cursor:
            return
        cursor = page.next_cursor


async def aiterate_pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.results:
            yield item
        if page.next_cursor is None or page.next_cursor == cursor:
            return
        cursor = page.next_cursor
