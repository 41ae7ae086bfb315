"""The Idempotency-Key rule shared by every endpoint that creates something."""

from __future__ import annotations

import uuid

import pytest

from satworks.errors import Conflict, ValidationFailed
from satworks.intake import idempotency


def test_the_key_comes_from_the_header_or_the_body_and_both_must_agree() -> None:
    assert idempotency.resolve(None, None) is None
    assert idempotency.resolve("k1", None) == "k1"
    assert idempotency.resolve(None, "k1") == "k1"
    assert idempotency.resolve("k1", "k1") == "k1"
    with pytest.raises(ValidationFailed, match="differ"):
        idempotency.resolve("k1", "k2")


@pytest.mark.parametrize("key", ["", "k" * 256, "a\x00b"])
def test_a_key_is_1_to_255_characters_without_nul(key: str) -> None:
    with pytest.raises(ValidationFailed):
        idempotency.resolve(key, None)
    with pytest.raises(ValidationFailed):
        idempotency.resolve(None, key)


def test_a_reused_key_replays_the_same_request_and_conflicts_on_another_naming_the_original() -> None:
    original = uuid.uuid4()
    idempotency.check_replay("payment", original, "hash-a", "hash-a")
    with pytest.raises(Conflict) as caught:
        idempotency.check_replay("payment", original, "hash-a", "hash-b")
    assert caught.value.details == {"payment_id": str(original)}
