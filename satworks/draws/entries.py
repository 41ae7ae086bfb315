"""A draw's entries, validated and put in canonical order (docs/draws.md, "Entries").

Canonical order is ascending Unicode code point order of the ids, which is also the byte order of
their UTF-8 encodings: the app's submission order does not matter. Validation is done with
whole-list, C-speed passes (``min``, ``map``, one regex over all ids) so a million entries take
well under a second; only an entry already known to be bad is looked at one by one, to name it.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import Any

from satworks.errors import ValidationFailed

#: Hard limits of the format, the same for every verifier (JSON numbers are exact up to 2**53 - 1).
MAX_TICKETS = 2**53 - 1
MAX_ID_BYTES = 1024
MAX_DRAW_ID_BYTES = 256
MAX_PROBLEMS = 20  # problems listed in an error's details; the message counts them all

# C0 controls, DEL (no id may hide in a terminal or carry the 0x00 separator) and surrogate code
# points (a Python str holds one only when it is not valid Unicode, e.g. a lone "\ud800" from JSON).
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class InvalidDraw(ValidationFailed):
    """The entries, k or the draw id break a rule; ``details`` lists the problems (``loc``, ``msg``)."""

    code = "invalid_draw"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"])
        super().__init__(f"invalid draw: {where}: {first['msg']}{more}", details=problems[:MAX_PROBLEMS])
        self.problems = problems


@dataclass(frozen=True)
class DrawLimits:
    """Limits an operator sets on submitted draws; the defaults suit the intake. ``SPEC_LIMITS`` are the format's."""

    max_entries: int = 1_000_000
    max_total_tickets: int = 1_000_000_000
    max_id_bytes: int = 128
    max_winners: int = 10_000


SPEC_LIMITS = DrawLimits(
    max_entries=MAX_TICKETS, max_total_tickets=MAX_TICKETS, max_id_bytes=MAX_ID_BYTES, max_winners=MAX_TICKETS
)


@dataclass(frozen=True, eq=False)
class CanonicalEntries:
    """Entries in canonical order. Build it with ``canonical_entries``, which guarantees its invariants:
    ids distinct, sorted, 1..MAX_ID_BYTES UTF-8 bytes without controls; tickets >= 1; total <= MAX_TICKETS."""

    ids: list[str]
    tickets: array[int]  # typecode "q", parallel to ids
    total_tickets: int

    def __len__(self) -> int:
        return len(self.ids)

    def first_tickets(self) -> array[int]:
        """``first[i]`` = tickets held by entries before ``i`` (entry ``i`` holds tickets first[i]+1 .. first[i+1])."""
        return array("q", accumulate(self.tickets, initial=0))


def canonical_entries(
    entries: Iterable[tuple[Any, Any]],
    *,
    k: Any,
    limits: DrawLimits = SPEC_LIMITS,
    entries_field: str = "entries",
    k_field: str = "k",
) -> CanonicalEntries:
    """Validate ``(id, tickets)`` pairs and ``k`` and return them in canonical order.

    Raises ``InvalidDraw`` listing every problem: no entries, too many, an id that is not a string,
    empty, too long or holds a control character or invalid Unicode, tickets that are not an integer
    or below 1, duplicate ids, too many tickets in total, k not an integer, below 1, above the limit or
    above the number of entries. ``loc`` indexes are positions in the submitted order.
    """
    pairs = entries if isinstance(entries, list) else list(entries)
    problems: list[dict[str, Any]] = []
    n = len(pairs)
    if n == 0:
        problems.append(_problem((entries_field,), "at least one entry is needed", "too_short"))
    elif n > limits.max_entries:
        problems.append(_problem((entries_field,), f"{n} entries; at most {limits.max_entries} allowed", "too_long"))
    if problems:  # nothing more worth checking, and a huge list is not walked
        raise InvalidDraw(problems + _k_problems(k, None, limits, k_field))
    ids: list[Any] = list(map(itemgetter(0), pairs))
    tickets: list[Any] = list(map(itemgetter(1), pairs))
    problems += _id_problems(ids, limits.max_id_bytes, entries_field)
    problems += _ticket_problems(tickets, entries_field)
    if problems:
        raise InvalidDraw(problems + _k_problems(k, n, limits, k_field))
    table = dict(zip(ids, tickets, strict=True))
    if len(table) < n:
        problems += _duplicate_problems(ids, entries_field)
    total = sum(tickets)
    limit = min(limits.max_total_tickets, MAX_TICKETS)
    if total > limit:
        problems.append(_problem((entries_field,), f"{total} tickets in total; at most {limit} allowed", "too_many"))
    problems += _k_problems(k, len(table), limits, k_field)
    if problems:
        raise InvalidDraw(problems)
    # str order is code point order, which is the byte order of UTF-8: the canonical order.
    ordered = sorted(table)
    return CanonicalEntries(ordered, array("q", map(table.__getitem__, ordered)), total)


def validate_draw_id(draw_id: Any, *, field: str = "draw_id") -> str:
    """The draw id as used in the seed: a string of 1..MAX_DRAW_ID_BYTES UTF-8 bytes, no controls."""
    msg = _text_problem(draw_id, MAX_DRAW_ID_BYTES)
    if msg:
        raise InvalidDraw([_problem((field,), msg, "invalid")])
    return str(draw_id)


def _problem(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _text_problem(value: Any, max_bytes: int) -> str | None:
    if type(value) is not str:
        return "must be a string"
    if not value:
        return "must not be empty"
    if _FORBIDDEN.search(value):
        return "must not contain control characters or invalid Unicode (lone surrogates)"
    if len(value.encode()) > max_bytes:
        return f"must be at most {max_bytes} bytes in UTF-8"
    return None


def _id_problems(ids: list[Any], max_bytes: int, field: str) -> list[dict[str, Any]]:
    max_bytes = min(max_bytes, MAX_ID_BYTES)
    fast_ok = set(map(type, ids)) == {str}
    if fast_ok:
        lengths = list(map(len, ids))
        fast_ok = (
            min(lengths) > 0
            and max(lengths) * 4 <= max_bytes  # a code point is at most 4 UTF-8 bytes
            and not _FORBIDDEN.search("".join(ids))
        )
    if fast_ok:
        return []
    out = []
    for index, value in enumerate(ids):
        msg = _text_problem(value, max_bytes)
        if msg:
            out.append(_problem((field, index, "id"), msg, "invalid"))
    return out


def _duplicate_problems(ids: list[str], field: str) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    out = []
    for index, value in enumerate(ids):
        first = seen.setdefault(value, index)
        if first != index:
            out.append(_problem((field, index, "id"), f"duplicate id {value!r} (also at index {first})", "duplicate"))
    return out


def _ticket_problems(tickets: list[Any], field: str) -> list[dict[str, Any]]:
    if set(map(type, tickets)) == {int} and min(tickets) >= 1 and max(tickets) <= MAX_TICKETS:
        return []
    out = []
    for index, value in enumerate(tickets):
        if type(value) is not int:
            out.append(_problem((field, index, "tickets"), "must be an integer", "int_type"))
        elif not 1 <= value <= MAX_TICKETS:
            out.append(_problem((field, index, "tickets"), f"must be between 1 and {MAX_TICKETS}", "out_of_range"))
    return out


def _k_problems(k: Any, distinct: int | None, limits: DrawLimits, field: str) -> list[dict[str, Any]]:
    if type(k) is not int:
        return [_problem((field,), "must be an integer", "int_type")]
    if k < 1:
        return [_problem((field,), "must be at least 1", "too_small")]
    if k > limits.max_winners:
        return [_problem((field,), f"{k} winners; at most {limits.max_winners} allowed", "too_large")]
    if distinct is not None and k > distinct:
        return [_problem((field,), f"{k} winners but only {distinct} distinct entries", "too_large")]
    return []
