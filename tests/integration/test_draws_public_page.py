"""A real draw's public page (no API key, the unguessable link from the API) in headless Chromium.

The draw is committed and completed through the whole stack; the browser opens ``public_url`` as a
player would and the page recomputes the winners from the proof with its own JavaScript. A proof
changed on its way to the browser is reported as a mismatch. Playwright's sync API runs in a thread of
its own (the test's event loop serves the intake meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.sync_api import Route, sync_playwright
from yarl import URL

from satworks.settings import Settings
from tests.integration.draws_stack import DrawStack, entries, running_draw_stack
from tests.integration.test_draws_verify_page import CHROMIUM, CHROMIUM_ARGS, VERDICT


@pytest.fixture
async def stack(base_settings: Settings, make_key: Any, aiohttp_client: Any) -> AsyncIterator[DrawStack]:
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (scripts/lib/services.sh installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    async with running_draw_stack(base_settings, make_key, aiohttp_client) as running:
        yield running


def _tamper(route: Route) -> None:
    """Swap the first winner for an entry that did not win, as a dishonest server might."""
    response = route.fetch()
    document = response.json()
    winners = {w["id"] for w in document["winners"]}
    document["winners"][0]["id"] = next(e["id"] for e in document["entries"] if e["id"] not in winners)
    route.fulfill(response=response, body=json.dumps(document), headers={"content-type": "application/json"})


def verdicts(url: str, origin: str) -> list[tuple[str | None, str, list[str]]]:
    """(status, text, winner ids shown) for the page as served, then with the proof tampered with."""
    out = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for tampered in (False, True):
                context = browser.new_context()
                page = context.new_page()
                requested: list[str] = []
                page.on("request", lambda r, seen=requested: seen.append(r.url))
                if tampered:
                    page.route("**/proof.json", _tamper)
                page.goto(url)
                page.wait_for_selector(VERDICT, timeout=60_000)
                shown = page.eval_on_selector_all(
                    "#details table tr", "rows => rows.slice(1).map(r => r.cells[1].textContent)"
                )
                out.append((page.get_attribute("#result", "data-status"), page.text_content("#result") or "", shown))
                context.close()
                assert all(u.startswith(origin + "/") for u in requested), "the page asked another origin"
        finally:
            browser.close()
    return out


async def test_the_public_page_of_a_real_draw_matches_and_a_tampered_proof_does_not(stack: DrawStack) -> None:
    height = await stack.tip() + 1
    body = {
        "raffle_id": "public-page",
        "entries": entries(60, emails=True),
        "winners": 4,
        "beacon": {"type": "bitcoin_block", "height": height},
        "confirmations": 1,
        "metadata": {"secret": "not for players"},
    }
    draw = await stack.commit(**body)
    public_url = draw["public_url"]
    assert public_url.startswith(str(stack.client.make_url("/p/draws/")))

    path = URL(public_url).path
    pending = await stack.client.get(path)  # no API key: the link is the capability
    assert pending.status == 200
    html = await pending.text()
    assert draw["commitment"] in html and "not drawn yet" in html

    await stack.wait_for(draw["id"], "waiting")
    await stack.mine(1)
    done = await stack.wait_for(draw["id"], "completed")

    proof = await stack.client.get(path + "/proof.json")
    assert proof.status == 200
    text = await proof.text()
    assert "player1@example.com" not in text and "not for players" not in text
    origin = str(stack.client.make_url("/")).rstrip("/")
    (real, forged) = await asyncio.to_thread(verdicts, public_url, origin)

    status, message, shown = real
    assert (status, message.split(":")[0]) == ("match", "MATCH"), message
    assert draw["commitment"] in message
    assert shown == [w["id"] for w in done["winners"]]
    status, message, _ = forged
    assert status == "mismatch", message
    assert message.startswith("MISMATCH: winner 1 mismatch"), message


async def test_an_unknown_or_malformed_link_is_404(stack: DrawStack) -> None:
    for token in ("A" * 22, "short", "x" * 200, "A" * 21 + "."):
        response = await stack.client.get(f"/p/draws/{token}")
        assert response.status == 404
        assert (await stack.client.get(f"/p/draws/{token}/proof.json")).status == 404
