"""JSON from outside (request bodies, CLI payloads, job results): strict, depth-bounded, storable.

``json.loads`` alone accepts ``NaN``, ``Infinity`` and ``1e999`` (not JSON numbers; Postgres refuses
them), recurses without a bound of ours (a body nested 100,000 deep raises ``RecursionError``), and lets
through U+0000 and lone surrogates, which Postgres text and jsonb cannot hold. ``parse`` refuses all of
them, naming where they are. The common case costs two ``bytes.count`` and one ``in``: the walk over
the parsed document runs only when the raw text could hold one of them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

DEFAULT_MAX_DEPTH = 32
# A \u0000 escape or a \uD800-\uDFFF one: the raw text may carry a character Postgres cannot store.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")

Kind = Literal["malformed", "too_deep", "unstorable"]


class JsonRefused(ValueError):
    """Why a document was refused; ``loc`` is the path to the offending key or value."""

    def __init__(self, message: str, *, kind: Kind, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.loc = loc


def parse(raw: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The document in ``raw``; raises ``JsonRefused`` (malformed, nested deeper than ``max_depth``
    containers, or holding text Postgres cannot store)."""
    try:
        value = _DECODER.decode(raw if isinstance(raw, str) else raw.decode())
    except RecursionError as exc:
        raise _too_deep(max_depth) from exc
    except UnicodeDecodeError as exc:
        raise JsonRefused("malformed JSON: not UTF-8", kind="malformed") from exc
    except ValueError as exc:
        raise JsonRefused(f"malformed JSON: {exc}", kind="malformed") from exc
    # Text from a command line may hold surrogate-escaped bytes (and is never hot): always walked.
    if (
        isinstance(raw, str)
        or raw.count(b"[") + raw.count(b"{") > max_depth
        or (b"\\u" in raw and _SUSPECT.search(raw) is not None)
    ):
        check(value, max_depth=max_depth)
    return value


def check(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise ``JsonRefused`` unless ``value`` (parsed JSON: dicts, lists, scalars) is at most
    ``max_depth`` containers deep and every key and string, and every number, can be stored."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 0, ())]
    while stack:
        item, depth, loc = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                raise _too_deep(max_depth, loc)
            for key, child in item.items():
                if isinstance(key, str):
                    _text(key, (*loc, key))
                stack.append((child, depth + 1, (*loc, key)))
        elif isinstance(item, list):
            if depth >= max_depth:
                raise _too_deep(max_depth, loc)
            stack.extend((child, depth + 1, (*loc, i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            _text(item, loc)
        elif isinstance(item, float) and not math.isfinite(item):
            raise JsonRefused("numbers must be finite", kind="unstorable", loc=loc)


def _text(text: str, loc: tuple[str | int, ...]) -> None:
    if "\x00" in text:
        raise JsonRefused("text must not contain U+0000", kind="unstorable", loc=loc)
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise JsonRefused("text must be valid Unicode (no lone surrogates)", kind="unstorable", loc=loc) from exc


def _too_deep(max_depth: int, loc: tuple[str | int, ...] = ()) -> JsonRefused:
    return JsonRefused(f"JSON nested deeper than {max_depth} levels", kind="too_deep", loc=loc)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)  # built once: a scanner per call costs µs
