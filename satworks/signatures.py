"""Webhook signatures: ``X-Satworks-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>``.

The timestamp is signed with the body, so a captured request cannot be replayed after the tolerance
window; within the window, receivers reject a repeated event id. Several ``v1`` values may be sent
(secret rotation); one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Satworks-Signature"


class SignatureError(ValueError):
    pass


def sign(body: bytes, secret: str, timestamp: int) -> str:
    return f"t={timestamp},v1={_digest(body, secret, timestamp)}"


def verify(header: str, body: bytes, secret: str, *, now: int, tolerance_s: int) -> int:
    """Check ``header`` against ``body``; returns the signed timestamp or raises ``SignatureError``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:  # "²" is a digit too
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("signature timestamp outside the tolerance window")
    expected = _digest(body, secret, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match")
    return timestamp


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
