"""Shared by the draw tests: the committed vectors, a spec-literal reference selection, proof builders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from satworks.draws import (
    Beacon,
    CanonicalEntries,
    DrawProof,
    ResolvedBeacon,
    Stream,
    Winner,
    build_proof,
    canonical_entries,
    commitment,
)

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors" / "draws"
VECTOR_PATHS = sorted(VECTORS_DIR.glob("*.json"))


def load_vector(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def reference_winners(entries: CanonicalEntries, k: int, seed: bytes) -> list[Winner]:
    """docs/draws.md "Selection" read literally: walk the remaining entries' tickets in order, O(n) a round."""
    stream = Stream(seed)
    first = 0
    alive = []
    for entry_id, held in zip(entries.ids, entries.tickets, strict=True):
        alive.append((entry_id, first, held))
        first += held
    winners = []
    for _ in range(k):
        r, _rejected = stream.below(sum(held for _, _, held in alive))
        for index, (entry_id, start, held) in enumerate(alive):
            if r < held:
                winners.append(Winner(entry_id, start + r + 1))
                del alive[index]
                break
            r -= held
    return winners


def make_proof(
    pairs: list[tuple[str, int]],
    k: int,
    *,
    draw_id: str = "draw-1",
    height: int = 850_000,
    label: str = "block",
) -> DrawProof:
    entries = canonical_entries(pairs, k=k)
    beacon = ResolvedBeacon(network="mainnet", height=height, block_hash=hashlib.sha256(label.encode()).hexdigest())
    committed = commitment(entries, k=k, beacon=Beacon(network="mainnet", height=height), draw_id=draw_id)
    return build_proof(draw_id=draw_id, entries=entries, k=k, beacon=beacon, committed=committed)


def proof_dict(proof: DrawProof) -> dict[str, Any]:
    return json.loads(proof.model_dump_json())  # type: ignore[no-any-return]
