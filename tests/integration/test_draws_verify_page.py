"""The players' verification page in headless Chromium: the JavaScript implementation against the vectors.

The static files are served by a local aiohttp server (127.0.0.1 is a secure context, so WebCrypto is
available); the page must not ask anything of any other origin. Chromium is Debian's
(``scripts/lib/services.sh`` installs it; ``SATWORKS_TEST_CHROMIUM`` overrides the path): under
``CI=true`` a missing browser fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, sync_playwright

from satworks.draws import DrawProof, verify
from tests.unit.draws_support import VECTOR_PATHS, load_vector

STATIC = Path(__file__).resolve().parents[2] / "satworks" / "http" / "static" / "draws"
CHROMIUM = os.environ.get("SATWORKS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VERDICT = ", ".join(f'#result[data-status="{s}"]' for s in ("match", "mismatch", "error"))
VECTORS = {path.stem: load_vector(path) for path in VECTOR_PATHS}


def _other_winner(doc: dict[str, Any]) -> None:
    winners = {w["id"] for w in doc["winners"]}
    doc["winners"][0]["id"] = next(e["id"] for e in doc["entries"] if e["id"] not in winners)


def _more_tickets(doc: dict[str, Any]) -> None:
    doc["entries"][10]["tickets"] += 1


def _other_block(doc: dict[str, Any]) -> None:
    doc["beacon"]["block_hash"] = hashlib.sha256(b"another block").hexdigest()


TAMPERED: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "changed-winner": ("small", _other_winner, "MISMATCH: winner 1 mismatch: recomputed "),
    "changed-tickets": (
        "medium",
        _more_tickets,
        "MISMATCH: commitment mismatch: the draw id, beacon, k and entries give ",
    ),
    "changed-block-hash": ("medium", _other_block, "MISMATCH: winner 1 mismatch: recomputed "),
}


def tampered(name: str) -> dict[str, Any]:
    vector, change, _ = TAMPERED[name]
    doc = copy.deepcopy(VECTORS[vector]["proof"])
    change(doc)
    assert not verify(DrawProof.model_validate(doc)).ok  # the Python implementation agrees it is tampered
    return doc


def proof_for(name: str) -> dict[str, Any]:
    return tampered(name) if name in TAMPERED else VECTORS[name]["proof"]  # type: ignore[no-any-return]


async def serve_proof(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in VECTORS and name not in TAMPERED:
        raise web.HTTPNotFound()
    return web.json_response(proof_for(name), dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def serve_embedded(request: web.Request) -> web.Response:
    """The page with the proof inside it, as a server may render it (``<`` escaped inside the JSON)."""
    proof = json.dumps(proof_for(request.match_info["name"]), ensure_ascii=False).replace("<", "\\u003c")
    tag = f'<script type="application/json" id="satworks-proof">{proof}</script>\n'
    html = (
        (STATIC / "verify.html")
        .read_text(encoding="utf-8")
        .replace('<script src="verify.js">', tag + '<script src="verify.js">')
    )
    return web.Response(text=html, content_type="text/html")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The static files and the proofs on 127.0.0.1, served from a thread with its own event loop."""
    app = web.Application()
    app.router.add_get("/proofs/{name}.json", serve_proof)
    app.router.add_get("/draws/{name}.embedded.html", serve_embedded)
    app.router.add_static("/draws/", STATIC)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="draws-page-server", daemon=True)
    thread.start()
    runner = web.AppRunner(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def start() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (starting one is the slow part)."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (scripts/lib/services.sh installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, site: str) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    foreign: list[str] = []
    opened.on("request", lambda request: None if request.url.startswith(site) else foreign.append(request.url))
    yield opened
    context.close()
    assert foreign == [], "the page asked another origin"


def verdict(page: Page) -> tuple[str | None, str]:
    page.wait_for_selector(VERDICT, timeout=60_000)
    return page.get_attribute("#result", "data-status"), page.text_content("#result") or ""


def test_page_reports_a_match_for_every_vector_with_the_same_winners_and_rounds(site: str, page: Page) -> None:
    for name, vector in VECTORS.items():
        page.goto(f"{site}/draws/verify.html?proof=/proofs/{name}.json")
        status, text = verdict(page)
        assert (status, text.split(":")[0]) == ("match", "MATCH"), (name, text)
        assert vector["proof"]["commitment"] in text
        rows = page.eval_on_selector_all(
            "#details table tr", "rows => rows.slice(1).map(r => [...r.cells].map(c => c.textContent))"
        )
        expected_rows = [[str(rank), w["id"], str(w["ticket"])] for rank, w in enumerate(vector["proof"]["winners"], 1)]
        assert rows == expected_rows, name
        inner = page.evaluate(
            "async doc => { const r = await SatworksDraws.verifyProof(doc); return [r.seed, r.rounds]; }",
            vector["proof"],
        )
        assert inner == [vector["expected"]["seed"], vector["expected"]["rounds"]], name


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_page_reports_a_mismatch_for_a_tampered_proof(site: str, page: Page, name: str) -> None:
    page.goto(f"{site}/draws/verify.html?proof=/proofs/{name}.json")
    status, text = verdict(page)
    assert status == "mismatch"
    assert text.startswith(TAMPERED[name][2]), text


def test_a_pasted_proof_and_an_embedded_proof_are_verified(site: str, page: Page) -> None:
    page.goto(f"{site}/draws/verify.html")
    assert page.get_attribute("#result", "data-status") == "idle"
    page.fill("#proof-input", json.dumps(VECTORS["unicode"]["proof"], ensure_ascii=False))
    page.click("#verify-button")
    assert verdict(page)[0] == "match"
    page.goto(f"{site}/draws/small.embedded.html")
    assert verdict(page)[0] == "match"
    page.goto(f"{site}/draws/changed-winner.embedded.html")
    assert verdict(page)[0] == "mismatch"


def test_what_is_not_a_proof_is_an_error_not_a_verdict(site: str, page: Page) -> None:
    page.goto(f"{site}/draws/verify.html")
    for raw, start in (
        ("{not json", "ERROR: the proof is not valid JSON"),
        ('{"k": 1}', "ERROR: this is not a draw proof: document: missing field"),
        (
            json.dumps({**VECTORS["small"]["proof"], "algorithm": "v9"}),
            'ERROR: this is not a draw proof: algorithm: "v9"',
        ),
    ):
        page.fill("#proof-input", raw)
        page.click("#verify-button")
        status, text = verdict(page)
        assert (status, text.startswith(start)) == ("error", True), text
    page.goto(f"{site}/draws/verify.html?proof=/proofs/absent.json")
    status, text = verdict(page)
    assert (status, text) == ("error", "ERROR: could not load the proof from /proofs/absent.json (HTTP 404)")


def _invalid_cases() -> dict[str, dict[str, Any]]:
    base = VECTORS["small"]["proof"]
    cases: dict[str, Callable[[dict[str, Any]], None]] = {
        "duplicate id": lambda d: d["entries"][1].update(id=d["entries"][0]["id"]),
        "not canonical": lambda d: d["entries"].reverse(),
        "control character": lambda d: d["entries"][0].update(id="al\tice"),
        "empty id": lambda d: d["entries"][0].update(id=""),
        "id too long": lambda d: d["entries"][-1].update(id="z" * 1_025),
        "k above entries": lambda d: d.update(k=6),
        "too many tickets": lambda d: [e.update(tickets=2**51) for e in d["entries"]],
        "bad draw id": lambda d: d.update(draw_id="line\nbreak"),
        "lone surrogate": lambda d: d["entries"][0].update(id="\ud800"),
        "unknown field": lambda d: d.update(emails=[]),
        "ticket as text": lambda d: d["winners"][0].update(ticket="11"),
    }
    out = {}
    for name, change in cases.items():
        doc = copy.deepcopy(base)
        change(doc)
        out[name] = doc
    return out


def _python_verdict(doc: dict[str, Any]) -> tuple[str, str]:
    try:
        proof = DrawProof.model_validate_json(json.dumps(doc))
    except ValueError:
        return "error", "not a draw proof"
    result = verify(proof)
    return ("match" if result.ok else "mismatch"), result.reason


def test_both_implementations_refuse_invalid_proofs_alike(site: str, page: Page) -> None:
    page.goto(f"{site}/draws/verify.html")
    for name, doc in _invalid_cases().items():
        js = page.evaluate(
            """async doc => {
                try { const r = await SatworksDraws.verifyProof(doc); return [r.status, r.reason]; }
                catch (e) {
                    return ["error", e instanceof SatworksDraws.ProofFormatError ? "not a draw proof" : String(e)];
                }
            }""",
            doc,
        )
        python = _python_verdict(doc)
        assert js[0] == python[0] != "match", (name, js, python)
        assert js[1].split(":")[:2] == python[1].split(":")[:2], (name, js, python)
