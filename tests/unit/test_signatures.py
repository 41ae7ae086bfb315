"""Webhook signatures: HMAC over timestamp and body, with a tolerance window."""

from __future__ import annotations

import pytest

from satworks.signatures import SignatureError, sign, verify

SECRET = "whsec-0123456789abcdef"
BODY = b'{"id":"evt_1","event":"payment.confirmed","data":{}}'


def test_a_fresh_signature_verifies() -> None:
    assert verify(sign(BODY, SECRET, 1_000), BODY, SECRET, now=1_100, tolerance_s=300) == 1_000


def test_any_matching_v1_is_enough_for_secret_rotation() -> None:
    header = sign(BODY, "old-secret-0123456789", 1_000) + "," + sign(BODY, SECRET, 1_000).split(",")[1]
    assert verify(header, BODY, SECRET, now=1_000, tolerance_s=300) == 1_000


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (sign(BODY, SECRET, 1_000), BODY + b" ", 1_000, "does not match"),
        (sign(BODY, "another-secret-012345", 1_000), BODY, 1_000, "does not match"),
        (sign(BODY, SECRET, 1_000), BODY, 1_301, "tolerance"),
        (sign(BODY, SECRET, 1_000), BODY, 699, "tolerance"),
        ("v1=abc", BODY, 1_000, "malformed"),
        ("t=1000", BODY, 1_000, "malformed"),
        ("", BODY, 1_000, "malformed"),
    ],
)
def test_bad_or_stale_signatures_are_refused(header: str, body: bytes, now: int, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(header, body, SECRET, now=now, tolerance_s=300)
