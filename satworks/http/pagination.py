"""Opaque keyset cursors: the ``seq`` of the last item shown, newest first.

A cursor is URL-safe base64 of ``s<seq>`` (``CURSOR_PATTERN``); ``seq`` is a Postgres bigint.
"""

from __future__ import annotations

import base64
from typing import Any

from satworks.db.pages import Page
from satworks.errors import ValidationFailed

CURSOR_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"
MAX_SEQ = 2**63 - 1  # bigint


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        digits = text[1:]
        if not text.startswith("s") or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            raise ValueError(cursor)
        seq = int(digits)
        if seq > MAX_SEQ:
            raise ValueError(cursor)
        return seq
    except ValueError as exc:
        raise ValidationFailed(
            "invalid cursor: pass a next_cursor from a listing",
            details=[{"loc": ["cursor"], "msg": "not a cursor of this API", "type": "invalid_cursor"}],
        ) from exc


def next_cursor(page: Page[Any]) -> str | None:
    """The cursor of the page after ``page``; ``None`` at the end."""
    return encode_cursor(page.next_before) if page.next_before is not None else None
