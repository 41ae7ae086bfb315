"""The ``Idempotency-Key`` rule, the same on every endpoint that creates something.

A key comes in the ``Idempotency-Key`` header or the body's ``idempotency_key`` (given both, they must
be equal): 1 to 255 characters of UTF-8 text, no U+0000 (Postgres text cannot hold it). The same key from the same
app with the same body replays what the key made first (answered with ``Idempotent-Replayed: true``);
with a different body it is a ``Conflict`` naming that job or payment. Keys are unique per app in the
database, so concurrent duplicates collapse there, not in Python.
"""

from __future__ import annotations

import uuid

from satworks.errors import Conflict, ValidationFailed

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def resolve(header: str | None, body: str | None) -> str | None:
    """The request's key from the header and the body; raises ``ValidationFailed``."""
    if header is not None:
        check(header, loc=HEADER)
    if body is not None:
        check(body)
    if header is not None and body is not None and header != body:
        raise ValidationFailed(
            "Idempotency-Key header and body idempotency_key differ", details=[{"loc": ["idempotency_key"]}]
        )
    return header if header is not None else body


def check(key: str, *, loc: str = "idempotency_key") -> None:
    """Raise ``ValidationFailed`` unless ``key`` is a valid idempotency key."""
    if not 1 <= len(key) <= MAX_LENGTH:
        raise ValidationFailed(f"{HEADER} must be 1 to {MAX_LENGTH} characters", details=[{"loc": [loc]}])
    if "\x00" in key:
        raise ValidationFailed("the idempotency key must not contain U+0000", details=[{"loc": [loc]}])
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:  # a header's bytes that are not UTF-8 (aiohttp keeps them as surrogates)
            raise ValidationFailed("the idempotency key must be UTF-8 text", details=[{"loc": [loc]}]) from None


def check_replay(kind: str, existing_id: uuid.UUID, existing_hash: str, request_hash: str) -> None:
    """A request whose key was used before is a replay only with the same body (request hash);
    otherwise raise ``Conflict`` with ``{"<kind>_id": ...}`` of what the key made."""
    if existing_hash != request_hash:
        raise Conflict(
            "idempotency key already used with a different request", details={f"{kind}_id": str(existing_id)}
        )
