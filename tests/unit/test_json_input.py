"""JSON from outside: strict numbers, bounded depth, only text Postgres can store."""

from __future__ import annotations

from typing import Any

import pytest

from satworks.json_input import JsonRefused, check, parse


@pytest.mark.parametrize(
    ("raw", "kind", "loc"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "too_deep", ()),  # once a RecursionError
        (b'{"a": {"b": {"c": 1}}}', "too_deep", ("a", "b")),
        (b"NaN", "malformed", ()),
        (b'{"a": Infinity}', "malformed", ()),
        (b"[-1e999]", "malformed", ()),
        (b"\xff", "malformed", ()),
        (b'{"a": "\\u0000"}', "unstorable", ("a",)),
        (b'{"\\u0000": 1}', "unstorable", ("\x00",)),
        (b'[1, ["\\ud800"]]', "unstorable", (1, 0)),
        (b'"\\udc00\\ud800"', "unstorable", ()),
    ],
)
def test_documents_postgres_cannot_take_are_refused_with_their_place(
    raw: bytes, kind: str, loc: tuple[Any, ...]
) -> None:
    with pytest.raises(JsonRefused) as refused:
        parse(raw, max_depth=2)
    assert (refused.value.kind, refused.value.loc) == (kind, loc)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": {"b": 1}}', b'"\\\\u0000"', b'"\\ud83d\\ude00"', b"[1.5e300]", b'{"a": "x"}'],
)
def test_documents_within_the_limits_parse_as_json_does(raw: bytes) -> None:
    import json

    assert parse(raw, max_depth=2) == json.loads(raw)


def test_text_from_a_command_line_is_always_checked() -> None:
    with pytest.raises(JsonRefused) as refused:
        parse('{"note": "a\udcff"}')  # a surrogate-escaped byte of argv
    assert refused.value.loc == ("note",)


def test_values_built_in_python_are_checked_too() -> None:
    with pytest.raises(JsonRefused, match="finite"):
        check({"x": [float("nan")]})
    check({"ok": [1, 2.5, "text", None, True]})
