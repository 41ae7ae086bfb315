"""Opaque keyset cursors: the ``seq`` of the last item shown, newest first."""

from __future__ import annotations

import base64
from typing import Any

from satworks.db.pages import Page
from satworks.errors import ValidationFailed


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


def next_cursor(page: Page[Any]) -> str | None:
    """The cursor of the page after ``page``; ``None`` at the end."""
    return encode_cursor(page.next_before) if page.next_before is not None else None
