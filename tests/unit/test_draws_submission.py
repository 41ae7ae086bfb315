"""A draw request's body → what is stored: validation, the frozen entries, their packing, the states."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest

from satworks.draws import Beacon, DrawLimits, InvalidDraw, canonical_entries, commitment
from satworks.draws.packed import CorruptEntries, pack_entries, unpack_entries
from satworks.draws.status import DrawStatus, IllegalDrawTransition, check_transition
from satworks.draws.submission import DrawRules, prepare_draw
from satworks.errors import BadRequest, ValidationFailed

RULES = DrawRules(DrawLimits(max_entries=100, max_total_tickets=1_000), "regtest", 6, 1)
ENTRIES = [{"id": "carol", "tickets": 2}, {"id": "alice", "tickets": 3}, {"id": "bob", "tickets": 1}]


def raw(**changes: Any) -> bytes:
    body = {"raffle_id": "r1", "entries": ENTRIES, "winners": 2, "beacon": {"type": "bitcoin_block", "height": 120}}
    body.update(changes)
    return json.dumps(body).encode()


def test_the_commitment_is_the_algorithms_over_the_canonical_entries() -> None:
    prepared = prepare_draw(raw(), draw_id="d-1", rules=RULES)
    entries = canonical_entries([(e["id"], e["tickets"]) for e in ENTRIES], k=2)
    expected = commitment(entries, k=2, beacon=Beacon(network="regtest", height=120), draw_id="d-1")
    assert prepared.commitment == expected
    assert (prepared.entries_count, prepared.total_tickets, prepared.confirmations) == (3, 6, 6)
    stored = unpack_entries(prepared.packed_entries)
    assert (stored.ids, list(stored.tickets), stored.total_tickets) == (entries.ids, list(entries.tickets), 6)


def test_entry_order_changes_neither_the_commitment_nor_the_request_hash() -> None:
    one = prepare_draw(raw(), draw_id="d-1", rules=RULES)
    other = prepare_draw(raw(entries=ENTRIES[::-1]), draw_id="d-1", rules=RULES)
    assert (one.commitment, one.request_hash) == (other.commitment, other.request_hash)
    assert prepare_draw(raw(winners=1), draw_id="d-1", rules=RULES).request_hash != one.request_hash


def test_emails_are_kept_only_to_notify() -> None:
    with_emails = [{**ENTRIES[0], "email": "carol@example.com"}, *ENTRIES[1:]]
    assert prepare_draw(raw(entries=with_emails), draw_id="d", rules=RULES).packed_emails is None
    kept = prepare_draw(raw(entries=with_emails, notify=True), draw_id="d", rules=RULES)
    assert kept.packed_emails is not None
    assert json.loads(zlib.decompress(kept.packed_emails)) == {"carol": "carol@example.com"}
    assert kept.emails_count == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (raw(entries=[*ENTRIES, ENTRIES[0]]), "entries"),
        (raw(winners=4), "winners"),
        (raw(entries=[{"id": "a", "tickets": 0}]), "entries"),
        (raw(entries=[{"id": "a", "tickets": 2.5}]), "entries"),
        (raw(entries=[{"id": "a", "tickets": 1, "email": "not an email"}]), "email"),
        (raw(entries=[{"id": f"e{i}", "tickets": 1} for i in range(101)]), "entries"),
        (raw(entries=[{"id": "a", "tickets": 1_001}], winners=1), "entries"),
        (raw(confirmations=0), "confirmations"),
        (raw(beacon={"type": "bitcoin_block", "height": 120, "network": "mainnet"}), "network"),
        (raw(entries={"a": 1}), "entries"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(body: bytes, where: str) -> None:
    with pytest.raises((ValidationFailed, InvalidDraw)) as caught:
        prepare_draw(body, draw_id="d", rules=RULES)
    assert where in json.dumps([caught.value.message, caught.value.details])


def test_malformed_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        prepare_draw(b'{"raffle_id": ', draw_id="d", rules=RULES)


def test_packed_entries_that_do_not_decode_are_refused() -> None:
    packed = pack_entries(canonical_entries([("a", 1), ("b", 2)], k=1))
    raw_bytes = zlib.decompress(packed)
    for broken in (b"not zlib", zlib.compress(raw_bytes[:-3]), zlib.compress(raw_bytes[:-8] + (0).to_bytes(8, "big"))):
        with pytest.raises(CorruptEntries):
            unpack_entries(broken)


def test_a_draw_only_moves_forward_and_final_states_never_move() -> None:
    check_transition(DrawStatus.COMMITTED, DrawStatus.WAITING)
    check_transition(DrawStatus.CONFIRMING, DrawStatus.CONFIRMING)  # a reorg replaced the block
    check_transition(DrawStatus.CONFIRMING, DrawStatus.WAITING)  # the chain fell below the height
    for final in (DrawStatus.COMPLETED, DrawStatus.REFUSED):
        for target in DrawStatus:
            with pytest.raises(IllegalDrawTransition):
                check_transition(final, target)
    with pytest.raises(IllegalDrawTransition):
        check_transition(DrawStatus.COMMITTED, DrawStatus.COMPLETED)
