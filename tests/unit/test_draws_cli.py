"""``satworks draw verify PROOF.json``: one line and an exit code, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satworks.cli import main
from tests.support import ROOT
from tests.unit.draws_support import VECTOR_PATHS, load_vector, make_proof, proof_dict


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["draw", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, doc: Any, name: str = "proof.json") -> str:
    path = tmp_path / name
    path.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    return str(path)


@pytest.mark.parametrize("path", VECTOR_PATHS, ids=lambda p: Path(p).stem)
def test_every_vector_matches(capsys: pytest.CaptureFixture[str], tmp_path: Path, path: Path) -> None:
    proof = load_vector(path)["proof"]
    code, out, err = run(capsys, write(tmp_path, json.dumps(proof, ensure_ascii=False).encode()))
    assert (code, err) == (0, "")
    (line,) = out.splitlines()
    assert line.startswith(f"match: commitment {proof['commitment']} and all {proof['k']} winners match ")


def test_a_changed_winner_is_a_mismatch_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = proof_dict(make_proof([("alice", 3), ("bob", 5), ("carol", 2)], 2))
    real = doc["winners"][1]["id"]
    doc["winners"][1]["id"] = next(e["id"] for e in doc["entries"] if e["id"] not in {w["id"] for w in doc["winners"]})
    code, out, err = run(capsys, write(tmp_path, doc))
    assert (code, err) == (1, "")
    assert out.startswith(f"mismatch: winner 2 mismatch: recomputed {real!r} with ticket ")
    assert len(out.splitlines()) == 1


def test_changed_tickets_break_the_commitment(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = proof_dict(make_proof([("alice", 3), ("bob", 5), ("carol", 2)], 1))
    doc["entries"][0]["tickets"] = 300
    code, out, _ = run(capsys, write(tmp_path, doc))
    assert code == 1
    assert out.startswith("mismatch: commitment mismatch: the draw id, beacon, k and entries give ")


def test_entries_out_of_canonical_order_are_an_invalid_proof(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = proof_dict(make_proof([("alice", 3), ("bob", 5)], 1))
    doc["entries"].reverse()
    code, out, _ = run(capsys, write(tmp_path, doc))
    assert (code, out.strip()) == (
        1,
        "mismatch: invalid proof: entries are not in canonical order (ascending id code points)",
    )


MALFORMED = {
    "empty": b"",
    "not json": b"{draw",
    "a list": b"[]",
    "null": b"null",
    "missing fields": b'{"algorithm": "satworks-draw-v1"}',
    "unknown algorithm": None,
    "extra field": None,
    "tickets as text": None,
    "negative k": None,
    "short block hash": None,
    "invalid utf-8": b'{"draw_id": "\xff\xfe"}',
    "lone surrogate": b'{"draw_id": "\\ud800"}',
    "deep nesting": b"[" * 100_000,
    "huge number": b'{"k": 1' + b"0" * 5_000 + b"}",
}


def _malformed(name: str) -> bytes:
    raw = MALFORMED[name]
    if raw is not None:
        return raw
    doc = proof_dict(make_proof([("alice", 3), ("bob", 5)], 1))
    if name == "unknown algorithm":
        doc["algorithm"] = "satworks-draw-v9"
    elif name == "extra field":
        doc["emails"] = ["a@example.com"]
    elif name == "tickets as text":
        doc["entries"][0]["tickets"] = "3"
    elif name == "negative k":
        doc["k"] = -1
    else:
        doc["beacon"]["block_hash"] = "00ff"
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_are_one_clear_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    path = write(tmp_path, _malformed(name))
    code, out, err = run(capsys, path)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith(f"error: {path} is not a draw proof: ")


def test_unreadable_paths_are_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for path, why in ((tmp_path / "absent.json", "No such file or directory"), (tmp_path, "Is a directory")):
        code, out, err = run(capsys, str(path))
        assert (code, out, err) == (2, "", f"error: cannot read {path}: {why}\n")


@pytest.mark.parametrize(
    "url", ["notaurl", "http://u:secret@h:notaport", "ftp://h", "", "http://[::1", "http://h:99999"]
)
def test_a_malformed_node_url_is_exit_2_without_echoing_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str
) -> None:
    path = write(tmp_path, proof_dict(make_proof([("alice", 3), ("bob", 5)], 1)))
    code, out, err = run(capsys, path, "--node", url)
    assert (code, out, err) == (2, "", "error: --node is not an http(s)://[user:password@]host[:port] URL\n")


def test_standard_input_and_exit_codes_in_a_real_process(tmp_path: Path) -> None:
    good = json.dumps(proof_dict(make_proof([("alice", 3), ("bob", 5)], 1)))

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "satworks.cli", "draw", "verify", *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60)

    ok = cli("-", stdin=good)
    assert (ok.returncode, ok.stdout.startswith("match: "), ok.stderr) == (0, True, "")
    bad = cli("-", stdin=good.replace('"k": 1', '"k": 2'))
    assert (bad.returncode, bad.stdout.startswith("mismatch: commitment mismatch")) == (1, True)
    broken = cli("-", stdin=good[:-10])
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("error: - is not a draw proof: document: Invalid JSON")


# Fuzz: random bytes, truncations and a valid proof with any one place replaced by any JSON value.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
PLACES: list[tuple[str | int, ...]] = [
    ("algorithm",),
    ("draw_id",),
    ("k",),
    ("beacon",),
    ("beacon", "type"),
    ("beacon", "network"),
    ("beacon", "height"),
    ("beacon", "block_hash"),
    ("commitment",),
    ("entries",),
    ("entries", 0),
    ("entries", 0, "id"),
    ("entries", 1, "tickets"),
    ("winners",),
    ("winners", 0),
    ("winners", 0, "id"),
    ("winners", 0, "ticket"),
    ("unknown",),
]
GOOD = proof_dict(make_proof([("alice", 3), ("bob", 5), ("\u00e9mile", 1)], 2))


def _replace(doc: Any, place: tuple[str | int, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for part in place[:-1]:
        target = target[part]
    target[place[-1]] = value
    return doc


fuzzed = st.one_of(
    st.binary(max_size=300),
    st.integers(0, len(json.dumps(GOOD))).map(lambda n: json.dumps(GOOD)[:n].encode()),
    st.builds(
        lambda place, value: json.dumps(_replace(GOOD, place, value)).encode(), st.sampled_from(PLACES), json_values
    ),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(fuzzed)
def test_fuzzed_proofs_never_crash_the_cli(capsys: pytest.CaptureFixture[str], raw: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(raw)
        handle.flush()
        code, out, err = run(capsys, handle.name)
    if code == 2:
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("error: ")
    else:
        assert code in (0, 1) and err == ""
        assert len(out.splitlines()) == 1 and out.startswith("match: " if code == 0 else "mismatch: ")
