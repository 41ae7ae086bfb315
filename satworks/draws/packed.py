"""How a draw's frozen entries are stored: one compressed byte string, not a row per entry.

The bytes are those the commitment hashes for the entries (docs/draws.md, "Commitment", fields 10
and 11: each id's UTF-8 bytes and a NUL, then every ticket count as u64be, in canonical order) after
u64be(n), compressed with zlib. A million entries with 16-character ids take about 10 MB, written
and read back in a fraction of a second, where a million rows would take tens of seconds to insert.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array

from satworks.draws.commitment import tickets_be
from satworks.draws.entries import MAX_TICKETS, CanonicalEntries

LEVEL = 1  # zlib's fastest: level 6 saves 4 % of the size for four times the time (bench/draws_job.py)


class CorruptEntries(ValueError):
    """The stored bytes do not decode to canonical entries."""


def pack_entries(entries: CanonicalEntries) -> bytes:
    ids = "\x00".join(entries.ids).encode() + b"\x00"
    return zlib.compress(b"".join((struct.pack(">Q", len(entries)), ids, tickets_be(entries.tickets))), LEVEL)


def unpack_entries(packed: bytes) -> CanonicalEntries:
    """The entries ``pack_entries`` stored; raises ``CorruptEntries`` when the bytes do not fit together."""
    try:
        raw = zlib.decompress(packed)
        (n,) = struct.unpack_from(">Q", raw)
        split = len(raw) - 8 * n
        ids = raw[8:split].decode().split("\x00")
    except (zlib.error, struct.error, UnicodeDecodeError) as exc:
        raise CorruptEntries(f"stored entries do not decode: {exc}") from exc
    if n < 1 or split <= 8 or ids.pop() != "" or len(ids) != n:
        raise CorruptEntries("stored entries: the ids and the ticket counts do not match")
    tickets = array("q")
    tickets.frombytes(raw[split:])
    if sys.byteorder == "little":
        tickets.byteswap()
    total = sum(tickets)
    if min(tickets) < 1 or total > MAX_TICKETS:
        raise CorruptEntries("stored entries: a ticket count is out of range")
    return CanonicalEntries(ids, tickets, total)
