"""Winner selection: the committed vectors, determinism, edge cases and fairness (docs/draws.md)."""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from pathlib import Path

import pytest

from satworks.draws import (
    Beacon,
    DrawProof,
    Round,
    Stream,
    canonical_entries,
    commitment,
    commitment_preimage,
    draw_seed,
    select_winners,
    verify,
)
from tests.unit.draws_support import VECTOR_PATHS, load_vector, make_proof, reference_winners

BLOCK = hashlib.sha256(b"a block").hexdigest()
COMMITMENT = hashlib.sha256(b"a commitment").hexdigest()


def test_there_is_a_vector_for_each_documented_edge_case() -> None:
    names = {path.stem for path in VECTOR_PATHS}
    assert {"one-entry", "small", "everyone-wins", "heavy", "unicode", "rejection", "medium"} <= names


@pytest.mark.parametrize("path", VECTOR_PATHS, ids=lambda p: Path(p).stem)
def test_vector_is_reproduced_byte_for_byte(path: Path) -> None:
    vector = load_vector(path)
    proof = DrawProof.model_validate(vector["proof"])
    expected = vector["expected"]
    submitted = vector.get("submitted_entries", vector["proof"]["entries"])
    entries = canonical_entries([(e["id"], e["tickets"]) for e in submitted], k=proof.k)
    assert entries.ids == [e["id"] for e in vector["proof"]["entries"]]
    assert list(entries.tickets) == [e["tickets"] for e in vector["proof"]["entries"]]
    if "commitment_preimage" in expected:
        preimage = commitment_preimage(entries, k=proof.k, beacon=proof.beacon, draw_id=proof.draw_id)
        assert preimage.hex() == expected["commitment_preimage"]
    committed = commitment(entries, k=proof.k, beacon=proof.beacon, draw_id=proof.draw_id)
    assert committed == expected["commitment"] == proof.commitment
    seed = draw_seed(proof.beacon.block_hash, proof.commitment, proof.draw_id)
    assert seed.hex() == expected["seed"]
    stream = Stream(seed)
    assert [f"{stream.word():016x}" for _ in range(4)] == expected["first_words"]
    rounds: list[Round] = []
    winners = select_winners(entries, proof.k, seed, trace=rounds)
    assert [{"remaining": r.remaining, "r": r.r, "rejected": r.rejected} for r in rounds] == expected["rounds"]
    assert [{"id": w.id, "ticket": w.ticket} for w in winners] == vector["proof"]["winners"]
    assert [lo <= w.ticket <= hi for w, (lo, hi) in zip(winners, expected["winner_ranges"], strict=True)] == [
        True
    ] * len(winners)
    result = verify(proof)
    assert result.ok, result.reason


def test_the_rejection_vector_really_rejects_a_word() -> None:
    vector = load_vector(next(p for p in VECTOR_PATHS if p.stem == "rejection"))
    assert vector["expected"]["rounds"][0]["rejected"] >= 1


def test_the_stream_is_sha256_of_seed_and_big_endian_counter() -> None:
    seed = bytes(range(32))
    stream = Stream(seed)
    words = [stream.word() for _ in range(8)]
    blocks = [hashlib.sha256(seed + struct.pack(">Q", i)).digest() for i in range(2)]
    assert words == [int.from_bytes(b[j : j + 8], "big") for b in blocks for j in range(0, 32, 8)]


def test_rejection_rule_discards_words_at_or_above_the_largest_multiple_of_the_bound() -> None:
    class Scripted(Stream):
        def __init__(self, words: list[int]) -> None:
            super().__init__(b"")
            self.script = words

        def word(self) -> int:
            return self.script.pop(0)

    bound = 3  # 2**64 % 3 == 1: only 2**64 - 1 is rejected
    assert Scripted([2**64 - 1, 2**64 - 2]).below(bound) == ((2**64 - 2) % 3, 1)
    assert Scripted([2**64 - 2]).below(bound) == ((2**64 - 2) % 3, 0)
    bound = 2**63 + 1  # limit = bound: more than half of all words are rejected
    assert Scripted([2**63 + 1, 2**64 - 1, 5]).below(bound) == (5, 2)


def test_selection_is_deterministic_and_depends_on_every_seed_input() -> None:
    entries = canonical_entries([(f"e{i}", i + 1) for i in range(200)], k=10)
    base = select_winners(entries, 10, draw_seed(BLOCK, COMMITMENT, "draw-1"))
    assert select_winners(entries, 10, draw_seed(BLOCK, COMMITMENT, "draw-1")) == base
    other_block = hashlib.sha256(b"another block").hexdigest()
    other_commitment = hashlib.sha256(b"another commitment").hexdigest()
    assert select_winners(entries, 10, draw_seed(other_block, COMMITMENT, "draw-1")) != base
    assert select_winners(entries, 10, draw_seed(BLOCK, other_commitment, "draw-1")) != base
    assert select_winners(entries, 10, draw_seed(BLOCK, COMMITMENT, "draw-2")) != base


def test_one_entry_wins_with_a_ticket_of_its_own() -> None:
    entries = canonical_entries([("solo", 1_000)], k=1)
    for draw_id in ("a", "b", "c"):
        (winner,) = select_winners(entries, 1, draw_seed(BLOCK, COMMITMENT, draw_id))
        assert winner.id == "solo" and 1 <= winner.ticket <= 1_000


def test_when_k_equals_the_entries_everyone_wins_once() -> None:
    pairs = [(f"p{i:03d}", (i % 7) + 1) for i in range(100)]
    entries = canonical_entries(pairs, k=100)
    winners = select_winners(entries, 100, draw_seed(BLOCK, COMMITMENT, "all"))
    assert sorted(w.id for w in winners) == sorted(p for p, _ in pairs)
    assert winners == reference_winners(entries, 100, draw_seed(BLOCK, COMMITMENT, "all"))


def test_a_whale_holding_nearly_all_tickets_wins_first_and_then_costs_nothing() -> None:
    whale = 2**53 - 1 - 1_000
    pairs = [("whale", whale)] + [(f"minnow-{i:04d}", 1) for i in range(1_000)]
    entries = canonical_entries(pairs, k=1_001)
    seed = draw_seed(BLOCK, COMMITMENT, "whale")
    winners = select_winners(entries, 1_001, seed)  # O(k log n): no rejection loop over the whale's tickets
    assert winners[0].id == "whale"
    assert len({w.id for w in winners}) == 1_001
    assert winners == reference_winners(entries, 1_001, seed)


def test_fenwick_selection_agrees_with_the_literal_reading_of_the_spec() -> None:
    for size in (1, 2, 3, 7, 64, 65, 500):
        pairs = [(f"x{i}", (i * 7919) % 97 + 1) for i in range(size)]
        entries = canonical_entries(pairs, k=size)
        for draw_id in ("one", "two"):
            seed = draw_seed(BLOCK, COMMITMENT, draw_id)
            assert select_winners(entries, size, seed) == reference_winners(entries, size, seed), (size, draw_id)


def test_select_winners_refuses_k_outside_one_to_n() -> None:
    entries = canonical_entries([("a", 1), ("b", 1)], k=1)
    for k in (0, 3):
        with pytest.raises(ValueError, match="k must be between 1 and the number of entries"):
            select_winners(entries, k, b"\0" * 32)


# Fairness. The seeds are fixed (draw ids chi-0 .. chi-N), so these tests are deterministic: they
# pass or fail the same way on every run. The threshold is the chi-square critical value at
# p = 0.001 for the degrees of freedom: a fair selection exceeds it on 1 seed set in 1,000.
CHI2_P001 = {4: 18.467, 5: 20.515}
SEEDS = 6_000


def _chi_square(observed: Counter[object], expected: dict[object, float]) -> float:
    return sum((observed[cell] - want) ** 2 / want for cell, want in expected.items())


def _draws(pairs: list[tuple[str, int]], k: int) -> list[tuple[str, ...]]:
    entries = canonical_entries(pairs, k=k)
    committed = commitment(entries, k=k, beacon=Beacon(network="mainnet", height=1), draw_id="chi")
    return [
        tuple(w.id for w in select_winners(entries, k, draw_seed(BLOCK, committed, f"chi-{i}"))) for i in range(SEEDS)
    ]


def test_first_winner_frequencies_match_ticket_weights() -> None:
    weights = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 10}
    total = sum(weights.values())
    firsts = Counter(draw[0] for draw in _draws(list(weights.items()), 1))
    expected: dict[object, float] = {entry: SEEDS * held / total for entry, held in weights.items()}
    assert _chi_square(firsts, expected) < CHI2_P001[4]
    # The test has power: the same counts are far from what an unweighted draw would give.
    assert _chi_square(firsts, dict.fromkeys(weights, SEEDS / 5)) > 10 * CHI2_P001[4]


def test_ordered_pairs_follow_weights_without_replacement() -> None:
    weights = {"a": 1, "b": 2, "c": 5}
    total = sum(weights.values())
    pairs = Counter(_draws(list(weights.items()), 2))
    expected: dict[object, float] = {
        (x, y): SEEDS * weights[x] / total * weights[y] / (total - weights[x])
        for x in weights
        for y in weights
        if x != y
    }
    assert set(pairs) <= set(expected)  # never the same entry twice
    assert _chi_square(pairs, expected) < CHI2_P001[5]


def test_proof_built_for_a_draw_verifies() -> None:
    proof = make_proof([("alice", 3), ("bob", 5), ("carol", 1)], 2)
    assert verify(proof).ok
    assert [w.id for w in proof.winners] == [w.id for w in verify(proof).winners]
