"""Winner selection (docs/draws.md, "Seed", "Stream", "Selection").

Tickets are numbered 1..T in canonical entry order. Each round draws ``r`` uniformly below the number
of tickets still in play (rejection sampling over u64 words of a SHA-256 counter-mode stream, so no
modulo bias), the holder of the r-th remaining ticket wins and all of its tickets leave the draw.

The remaining tickets live in a Fenwick tree over the entries: finding the holder of ticket ``r`` and
removing a winner are O(log n) each, whatever the weights (a winner holding almost every ticket costs
the same as any other), so a draw costs O(n) to build plus O(k log n), with two arrays of n + 1
integers: memory grows with the entries, never with the tickets.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from dataclasses import dataclass
from operator import sub

from satworks.draws.commitment import ALGORITHM, text_field
from satworks.draws.entries import CanonicalEntries

SEED_TAG = "satworks-draw-seed"
_TWO64 = 1 << 64


@dataclass(frozen=True, slots=True)
class Winner:
    id: str
    ticket: int  # the winning ticket's number, 1..T in canonical order; inside the winner's own range


@dataclass(frozen=True, slots=True)
class Round:
    """One round of the selection, for test vectors and debugging."""

    remaining: int  # tickets still in play
    r: int  # the 0-based index drawn among them
    rejected: int  # u64 words thrown away by the rejection rule before r


def draw_seed(block_hash: str, commitment: str, draw_id: str, *, algorithm: str = ALGORITHM) -> bytes:
    """SHA-256 over the tag, the algorithm, the block hash and commitment (32 bytes each) and the draw id."""
    return hashlib.sha256(
        b"".join(
            (
                text_field(SEED_TAG),
                text_field(algorithm),
                bytes.fromhex(block_hash),
                bytes.fromhex(commitment),
                text_field(draw_id),
            )
        )
    ).digest()


class Stream:
    """u64 big-endian words of SHA-256(seed || u64be(i)) for i = 0, 1, 2, ..., four words per block."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._block = 0
        self._words: list[int] = []

    def word(self) -> int:
        if not self._words:
            digest = hashlib.sha256(self._seed + struct.pack(">Q", self._block)).digest()
            self._block += 1
            self._words = list(reversed(struct.unpack(">4Q", digest)))
        return self._words.pop()

    def below(self, bound: int) -> tuple[int, int]:
        """``(r, rejected)``: r uniform in [0, bound); words at or above the largest multiple of bound are rejected."""
        limit = _TWO64 - _TWO64 % bound
        rejected = 0
        while True:
            x = self.word()
            if x < limit:
                return x % bound, rejected
            rejected += 1


def select_winners(entries: CanonicalEntries, k: int, seed: bytes, *, trace: list[Round] | None = None) -> list[Winner]:
    """The k winners in draw order. ``entries`` and ``k`` must have passed ``canonical_entries``."""
    n = len(entries)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of entries ({n}), not {k}")
    first = entries.first_tickets()
    tree = _fenwick(first)
    tickets = entries.tickets
    stream = Stream(seed)
    remaining = entries.total_tickets
    top = 1 << (n.bit_length() - 1)
    winners = []
    for _ in range(k):
        r, rejected = stream.below(remaining)
        if trace is not None:
            trace.append(Round(remaining, r, rejected))
        # Descend the tree: the last position whose remaining-ticket prefix is <= r holds ticket r.
        pos, rest, step = 0, r, top
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] <= rest:
                pos = nxt
                rest -= tree[nxt]
            step >>= 1
        winners.append(Winner(entries.ids[pos], first[pos] + rest + 1))
        held = tickets[pos]
        remaining -= held
        i = pos + 1
        while i <= n:
            tree[i] -= held
            i += i & -i
    return winners


def _fenwick(first: array[int]) -> array[int]:
    """The Fenwick tree of the tickets, 1-based: node i = first[i] - first[i - lowbit(i)].

    Built one level at a time with slices (nodes step, 3*step, 5*step, ... share lowbit = step), so the
    work is in C: n subtractions in all.
    """
    n = len(first) - 1
    tree = array("q", bytes(8 * (n + 1)))
    step = 1
    while step <= n:
        upper = first[step :: 2 * step]
        lower = first[0 : len(first) - step : 2 * step][: len(upper)]
        tree[step :: 2 * step] = array("q", map(sub, upper, lower))
        step *= 2
    return tree
