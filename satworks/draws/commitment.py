"""The commitment: SHA-256 over the draw's canonical bytes (docs/draws.md, "Commitment").

Everything that decides the winners but the beacon block is in it: the algorithm version, the draw
id, the beacon (type, network, height), k and the entries (ids and tickets, in canonical order), so a
commitment published before the block is mined pins the outcome to that block alone. Contact
data such as emails is not: the proof that carries these bytes is public, and an email cannot change
who wins. The ids are written NUL-terminated and the tickets as one block of big-endian u64s so the
whole serialisation is three C-speed joins, not a Python loop per entry.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from typing import Final

from satworks.draws.beacon import Beacon
from satworks.draws.entries import CanonicalEntries

ALGORITHM: Final = "satworks-draw-v1"
COMMITMENT_TAG = "satworks-draw-commitment"


def text_field(value: str) -> bytes:
    """A short string: u16 big-endian byte length, then its UTF-8 bytes."""
    raw = value.encode()
    return struct.pack(">H", len(raw)) + raw


def tickets_be(tickets: array[int]) -> bytes:
    """Each ticket count as a u64 big-endian (counts are positive, so the signed array's bytes are the same)."""
    out = array("q", tickets)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


def commitment_preimage(
    entries: CanonicalEntries, *, k: int, beacon: Beacon, draw_id: str, algorithm: str = ALGORITHM
) -> bytes:
    """The bytes the commitment hashes; ``draw_id`` must have passed ``validate_draw_id``."""
    header = b"".join(
        (
            text_field(COMMITMENT_TAG),
            text_field(algorithm),
            text_field(draw_id),
            text_field(beacon.type),
            text_field(beacon.network),
            struct.pack(">QQQQ", beacon.height, k, len(entries), entries.total_tickets),
        )
    )
    ids = "\x00".join(entries.ids).encode() + b"\x00"  # no id holds a NUL (canonical_entries refuses it)
    return b"".join((header, ids, tickets_be(entries.tickets)))


def commitment(entries: CanonicalEntries, *, k: int, beacon: Beacon, draw_id: str, algorithm: str = ALGORITHM) -> str:
    """The commitment as 64 lowercase hex digits."""
    preimage = commitment_preimage(entries, k=k, beacon=beacon, draw_id=draw_id, algorithm=algorithm)
    return hashlib.sha256(preimage).hexdigest()
