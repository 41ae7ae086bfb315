"""Write the draw test vectors (docs/draws.md) from the Python implementation.

Run only when the algorithm deliberately changes (a new version): ``python tests/vectors/draws/make_vectors.py``.
The tests check every committed vector against both implementations, so a change that alters a
winner, a commitment or an intermediate value by accident fails them.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from pathlib import Path
from typing import Any

from satworks.draws import (
    Beacon,
    ResolvedBeacon,
    Round,
    Stream,
    canonical_entries,
    commitment,
    commitment_preimage,
    draw_seed,
    select_winners,
)

HERE = Path(__file__).resolve().parent
PREIMAGE_MAX_BYTES = 4096  # vectors this small also carry the whole commitment preimage


def _hash(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _draw_id(label: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(b"draw-id:" + label.encode()).digest()[:16]))


def vector(
    name: str,
    description: str,
    submitted: list[tuple[str, int]],
    k: int,
    *,
    height: int = 900_000,
    network: str = "mainnet",
    draw_id: str | None = None,
) -> dict[str, Any]:
    entries = canonical_entries(submitted, k=k)
    beacon = ResolvedBeacon(network=network, height=height, block_hash=_hash(f"block:{name}"))  # type: ignore[arg-type]
    draw_id = draw_id or _draw_id(name)
    committed = commitment(entries, k=k, beacon=Beacon(network=beacon.network, height=height), draw_id=draw_id)
    seed = draw_seed(beacon.block_hash, committed, draw_id)
    rounds: list[Round] = []
    winners = select_winners(entries, k, seed, trace=rounds)
    first = entries.first_tickets()
    preimage = commitment_preimage(entries, k=k, beacon=beacon, draw_id=draw_id)
    stream = Stream(seed)
    expected: dict[str, Any] = {
        "commitment": committed,
        "seed": seed.hex(),
        "first_words": [f"{stream.word():016x}" for _ in range(4)],
        "rounds": [{"remaining": r.remaining, "r": r.r, "rejected": r.rejected} for r in rounds],
        "winner_ranges": [[first[entries.ids.index(w.id)] + 1, first[entries.ids.index(w.id) + 1]] for w in winners],
    }
    if len(preimage) <= PREIMAGE_MAX_BYTES:
        expected["commitment_preimage"] = preimage.hex()
    out: dict[str, Any] = {"name": name, "description": description}
    if [e[0] for e in submitted] != entries.ids:
        out["submitted_entries"] = [{"id": i, "tickets": t} for i, t in submitted]
    out["proof"] = {
        "algorithm": "satworks-draw-v1",
        "draw_id": draw_id,
        "k": k,
        "beacon": beacon.model_dump(),
        "commitment": committed,
        "entries": [{"id": i, "tickets": t} for i, t in zip(entries.ids, entries.tickets, strict=True)],
        "winners": [{"id": w.id, "ticket": w.ticket} for w in winners],
    }
    out["expected"] = expected
    return out


def _rejecting_draw() -> dict[str, Any]:
    """Total tickets T just above 2**64 / 2049, so about one word in 2049 is rejected; find a draw id that hits one."""
    total = (1 << 64) // 2049 + 1
    assert total <= 2**53 - 1
    submitted = [("alpha", total // 2), ("beta", total // 3), ("gamma", total - total // 2 - total // 3)]
    for attempt in range(200_000):
        candidate = vector(
            "rejection", "", submitted, 2, draw_id=f"rejection-{attempt}", height=123_456, network="testnet"
        )
        if candidate["expected"]["rounds"][0]["rejected"]:
            candidate["description"] = (
                f"{total} tickets (just above 2^64 / 2049): the first stream word is rejected, "
                "so round 1 uses the second"
            )
            return candidate
    raise RuntimeError("no rejecting draw id found")


def vectors() -> list[dict[str, Any]]:
    rng = random.Random(20_261_129)  # fixed: the medium vector must not change between runs
    medium = [(f"player-{rng.getrandbits(48):012x}", rng.randint(1, 1_000)) for _ in range(2_000)]
    return [
        vector("one-entry", "a single entry wins with one of its tickets", [("only-entry", 7)], 1),
        vector(
            "small",
            "five entries submitted out of order, two winners; the proof lists them in canonical order",
            [("carol", 3), ("alice", 1), ("eve", 10), ("bob", 2), ("dave", 4)],
            2,
            network="regtest",
            height=101,
        ),
        vector(
            "everyone-wins",
            "k equals the number of entries: every entry wins, the order is the draw",
            [(f"entry-{i}", i * i + 1) for i in range(6)],
            6,
            network="signet",
            height=0,
        ),
        vector(
            "heavy",
            "one entry holds nearly all 2^53 - 1 tickets; after it wins, the small ones share the rest",
            [("whale", 2**53 - 1 - 6), ("minnow-1", 1), ("minnow-2", 2), ("minnow-3", 3)],
            3,
        ),
        vector(
            "unicode",
            "non-ASCII ids: code point (UTF-8 byte) order differs from UTF-16 order; composed and decomposed "
            "forms are distinct ids",
            [
                ("zo\u00eb", 2),
                ("Zo\u00eb", 3),
                ("Zoe\u0308", 5),
                ("\uff21", 7),  # FULLWIDTH LATIN CAPITAL LETTER A, sorts before the emoji by code point
                ("\U0001f600", 11),  # an emoji: a surrogate pair in UTF-16, so UTF-16 order would put it first
                ("\U0001d518", 13),
                ("\u65e5\u672c", 17),
                ("a", 19),
                ("A", 23),
                ("stra\u00dfe", 29),
                ("\u00e9t\u00e9 \u2014 \u00e7a", 31),
            ],
            4,
        ),
        _rejecting_draw(),
        vector("medium", "2,000 entries, 1 to 1,000 tickets each, 50 winners", medium, 50, height=912_345),
    ]


def main() -> None:
    for item in vectors():
        path = HERE / f"{item['name']}.json"
        indent = 1 if len(item["proof"]["entries"]) <= 20 else None  # the medium vector stays compact
        path.write_text(json.dumps(item, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
        print(path.relative_to(HERE.parents[2]))


if __name__ == "__main__":
    main()
