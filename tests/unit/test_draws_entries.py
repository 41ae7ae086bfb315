"""Entry validation and canonical order: every bad draw is refused with each problem named."""

from __future__ import annotations

from typing import Any

import pytest

from satworks.draws import SPEC_LIMITS, DrawLimits, InvalidDraw, canonical_entries
from satworks.draws.entries import MAX_PROBLEMS, MAX_TICKETS, validate_draw_id
from satworks.errors import ValidationFailed


def problems(pairs: list[tuple[Any, Any]], k: Any = 1, limits: DrawLimits = SPEC_LIMITS) -> list[dict[str, Any]]:
    with pytest.raises(InvalidDraw) as caught:
        canonical_entries(pairs, k=k, limits=limits)
    return caught.value.problems


def test_entries_come_out_in_code_point_order_with_their_tickets() -> None:
    entries = canonical_entries([("\U0001f600", 1), ("b", 2), ("\uff21", 3), ("B", 4), ("a", 5)], k=2)
    # Code point (= UTF-8 byte) order: U+FF21 before U+1F600, although UTF-16 puts the emoji first.
    assert entries.ids == ["B", "a", "b", "\uff21", "\U0001f600"]
    assert list(entries.tickets) == [4, 5, 2, 3, 1]
    assert entries.total_tickets == 15
    assert list(entries.first_tickets()) == [0, 4, 9, 11, 14, 15]
    assert [i.encode() for i in entries.ids] == sorted(i.encode() for i in entries.ids)


def test_submission_order_does_not_matter() -> None:
    pairs = [(f"id-{i}", i + 1) for i in range(50)]
    forward = canonical_entries(pairs, k=3)
    backward = canonical_entries(list(reversed(pairs)), k=3)
    assert (forward.ids, list(forward.tickets)) == (backward.ids, list(backward.tickets))


def test_duplicate_ids_are_refused_naming_both_positions() -> None:
    found = problems([("a", 1), ("b", 1), ("a", 2), ("c", 1)])
    assert found == [{"loc": ["entries", 2, "id"], "msg": "duplicate id 'a' (also at index 0)", "type": "duplicate"}]


def test_k_above_the_distinct_entries_is_refused() -> None:
    assert problems([("a", 1), ("b", 5)], k=3)[0]["msg"] == "3 winners but only 2 distinct entries"
    found = problems([("a", 1), ("a", 1), ("b", 1)], k=3)  # duplicates do not count twice
    assert [p["msg"] for p in found][-1] == "3 winners but only 2 distinct entries"


@pytest.mark.parametrize(
    ("tickets", "kind"), [(0, "out_of_range"), (-3, "out_of_range"), (MAX_TICKETS + 1, "out_of_range")]
)
def test_tickets_outside_one_to_the_maximum_are_refused(tickets: int, kind: str) -> None:
    assert problems([("a", 2), ("b", tickets)]) == [
        {"loc": ["entries", 1, "tickets"], "msg": f"must be between 1 and {MAX_TICKETS}", "type": kind}
    ]


@pytest.mark.parametrize("tickets", [True, 1.0, "3", None])
def test_tickets_that_are_not_integers_are_refused(tickets: Any) -> None:
    assert problems([("a", tickets)])[0] == {
        "loc": ["entries", 0, "tickets"],
        "msg": "must be an integer",
        "type": "int_type",
    }


@pytest.mark.parametrize(
    ("entry_id", "msg"),
    [
        ("", "must not be empty"),
        (7, "must be a string"),
        ("tab\there", "must not contain control characters or invalid Unicode (lone surrogates)"),
        ("nul\x00", "must not contain control characters or invalid Unicode (lone surrogates)"),
        ("del\x7f", "must not contain control characters or invalid Unicode (lone surrogates)"),
        ("lone\ud800", "must not contain control characters or invalid Unicode (lone surrogates)"),
        ("\u00e9" * 65, "must be at most 128 bytes in UTF-8"),  # 65 characters, 130 bytes
    ],
)
def test_bad_ids_are_refused(entry_id: Any, msg: str) -> None:
    found = problems([("fine", 1), (entry_id, 1)], limits=DrawLimits())
    assert found == [{"loc": ["entries", 1, "id"], "msg": msg, "type": "invalid"}]


def test_an_id_of_exactly_the_byte_limit_is_accepted() -> None:
    entries = canonical_entries([("\u00e9" * 64, 1)], k=1, limits=DrawLimits())
    assert len(entries.ids[0].encode()) == 128


def test_limits_on_entries_tickets_and_winners_are_parameters() -> None:
    limits = DrawLimits(max_entries=3, max_total_tickets=10, max_id_bytes=4, max_winners=2)
    assert problems([("a", 1)] * 4, limits=limits)[0]["msg"] == "4 entries; at most 3 allowed"
    assert problems([("a", 6), ("b", 5)], limits=limits)[0]["msg"] == "11 tickets in total; at most 10 allowed"
    assert problems([("abcde", 1)], limits=limits)[0]["msg"] == "must be at most 4 bytes in UTF-8"
    assert problems([("a", 1), ("b", 1), ("c", 1)], k=3, limits=limits)[0]["msg"] == "3 winners; at most 2 allowed"
    assert problems([], limits=limits)[0]["msg"] == "at least one entry is needed"


@pytest.mark.parametrize(
    ("k", "msg"), [(0, "must be at least 1"), (True, "must be an integer"), ("2", "must be an integer")]
)
def test_k_must_be_a_positive_integer(k: Any, msg: str) -> None:
    assert [(p["loc"], p["msg"]) for p in problems([("a", 1), ("b", 1)], k=k)] == [(["k"], msg)]


def test_every_problem_is_counted_and_the_details_are_capped() -> None:
    with pytest.raises(InvalidDraw) as caught:
        canonical_entries([(f"e{i}", 0) for i in range(30)], k=0, entries_field="entries", k_field="winners")
    error = caught.value
    assert isinstance(error, ValidationFailed)  # the HTTP layer answers it with 422
    assert len(error.problems) == 31
    assert len(error.details) == MAX_PROBLEMS
    assert error.message == f"invalid draw: entries.0.tickets: must be between 1 and {MAX_TICKETS} (and 30 more)"
    assert error.problems[-1]["loc"] == ["winners"]


def test_draw_ids_follow_the_id_rules() -> None:
    assert validate_draw_id("0b1e2c3d-uuid") == "0b1e2c3d-uuid"
    for bad in ("", "x" * 257, "line\nbreak", 12):
        with pytest.raises(InvalidDraw):
            validate_draw_id(bad)
