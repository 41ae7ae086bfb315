"""Keyset pages of listings, newest first: fetch one row more than the page to know whether it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_before: int | None
    """The ``seq`` the next (older) page continues before; ``None`` on the last page."""


def page_of(rows: Sequence[T], limit: int, seq: Callable[[T], int]) -> Page[T]:
    """``rows`` fetched with ``limit + 1``: the first ``limit`` of them, and where the next page starts."""
    items = list(rows[:limit])
    return Page(items, seq(items[-1]) if len(rows) > limit else None)
