"""Properties of draws over generated inputs (hypothesis)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satworks.draws import DrawProof, canonical_entries, draw_seed, select_winners, verify
from tests.unit.draws_support import make_proof, proof_dict, reference_winners

# No deadline: the machine is shared, and these tests assert outcomes, never durations.
DRAWS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Ids: any Unicode scalar values but controls (Cs = surrogates, Cc = controls).
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@st.composite
def draws(draw: st.DrawFn, *, min_tickets: int = 1, max_entries: int = 25) -> tuple[list[tuple[str, int]], int]:
    weights = st.one_of(st.integers(min_tickets, min_tickets + 50), st.integers(min_tickets, 2**40))
    pairs = draw(st.dictionaries(ids, weights, min_size=1, max_size=max_entries))
    k = draw(st.integers(1, len(pairs)))
    return list(pairs.items()), k


@DRAWS
@given(draws(), st.randoms(use_true_random=False), st.binary(min_size=32, max_size=32))
def test_input_order_changes_nothing(draw: tuple[list[tuple[str, int]], int], rnd: Any, block: bytes) -> None:
    pairs, k = draw
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    a = make_proof(pairs, k, label=block.hex())
    b = make_proof(shuffled, k, label=block.hex())
    assert a == b


@DRAWS
@given(draws(), st.binary(min_size=32, max_size=32), st.text("abc-123", min_size=1, max_size=5))
def test_k_distinct_winners_each_with_a_ticket_of_its_own(
    draw: tuple[list[tuple[str, int]], int], block: bytes, draw_id: str
) -> None:
    pairs, k = draw
    entries = canonical_entries(pairs, k=k)
    seed = draw_seed(block.hex(), hashlib.sha256(block).hexdigest(), draw_id)
    winners = select_winners(entries, k, seed)
    assert len(winners) == k
    assert len({w.id for w in winners}) == k
    first = entries.first_tickets()
    for winner in winners:
        at = entries.ids.index(winner.id)
        assert first[at] < winner.ticket <= first[at + 1]
    assert winners == reference_winners(entries, k, seed)


@DRAWS
@given(draws())
def test_a_built_proof_verifies_after_a_json_round_trip(draw: tuple[list[tuple[str, int]], int]) -> None:
    proof = make_proof(*draw)
    assert verify(DrawProof.model_validate_json(proof.model_dump_json())).ok


def _other_id(doc: dict[str, Any], seed: str) -> str:
    taken = {e["id"] for e in doc["entries"]}
    return next(c for i in range(1000) if (c := f"{seed}-{i}") not in taken)


# Each tampering changes one field of a genuine proof. Fields that only feed the seed (block hash,
# draw id) are tampered on draws with at least 2**20 tickets per entry, so that the same winners
# with the same ticket numbers coming out of another seed is not a coincidence to be expected.
TAMPERINGS = {
    "commitment": lambda d: d.update(commitment=hashlib.sha256(d["commitment"].encode()).hexdigest()),
    "k": lambda d: d.update(k=d["k"] + 1 if d["k"] < len(d["entries"]) else d["k"] - 1),
    "height": lambda d: d["beacon"].update(height=d["beacon"]["height"] + 1),
    "network": lambda d: d["beacon"].update(network="testnet"),
    "block_hash": lambda d: d["beacon"].update(
        block_hash=hashlib.sha256(d["beacon"]["block_hash"].encode()).hexdigest()
    ),
    "draw_id": lambda d: d.update(draw_id=d["draw_id"] + "x"),
    "entry tickets": lambda d: d["entries"][-1].update(tickets=d["entries"][-1]["tickets"] + 1),
    "entry id": lambda d: d["entries"][0].update(id=_other_id(d, d["entries"][0]["id"])),
    "entry added": lambda d: d["entries"].append({"id": _other_id(d, "\U0010fffd"), "tickets": 1}),
    "entry removed": lambda d: d["entries"].pop(),
    "winner id": lambda d: d["winners"][0].update(id=_other_id(d, "nobody")),
    "winner ticket": lambda d: d["winners"][0].update(ticket=d["winners"][0]["ticket"] + 1),
    "winner dropped": lambda d: d["winners"].pop(),
    "winners reordered": lambda d: d["winners"].reverse(),
}


@settings(DRAWS, max_examples=300)
@given(draws(min_tickets=2**20, max_entries=12), st.sampled_from(sorted(TAMPERINGS)))
def test_any_single_field_tampering_is_detected(draw: tuple[list[tuple[str, int]], int], field: str) -> None:
    pairs, k = draw
    if len(pairs) < 2 or k < 2:  # so that k can move either way and there are two winners to reorder
        pairs, k = [*pairs, ("extra-a", 2**20), ("extra-b", 2**21)], k + 1
    doc = proof_dict(make_proof(pairs, k))
    TAMPERINGS[field](doc)
    proof = DrawProof.model_validate_json(json.dumps(doc))  # still a well-formed proof
    result = verify(proof)
    assert not result.ok, (field, result.reason)
