"""Opaque keyset cursors: the ``seq`` of the last item shown, newest first."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

from satworks.errors import ValidationFailed

R = TypeVar("R", bound=Any)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith("s"):
            raise ValueError(cursor)
        return int(text[1:])
    except ValueError as exc:
        raise ValidationFailed("invalid cursor", details=[{"loc": ["cursor"]}]) from exc


def split_page(rows: Sequence[R], limit: int) -> tuple[Sequence[R], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor of the next one (None at the end)."""
    page = rows[:limit]
    return page, encode_cursor(page[-1].seq) if len(rows) > limit else None
