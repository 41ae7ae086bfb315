"""``/docs`` in headless Chromium: Swagger UI renders every operation of the OpenAPI document from files
the intake serves itself (nothing from another origin). Chromium is Debian's, as in
``test_draws_verify_page.py``: under ``CI=true`` a missing browser fails instead of skipping."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from satworks.settings import Settings
from tests.integration.test_draws_verify_page import CHROMIUM, CHROMIUM_ARGS
from tests.support import WebProcess


@pytest.fixture(scope="module")
def web(base_settings: Settings, tmp_path_factory: Any) -> Iterator[WebProcess]:
    process = WebProcess(base_settings, Path(tmp_path_factory.mktemp("docs")) / "web.log").start()
    yield process
    process.stop()


def test_docs_page_renders_every_operation_of_the_document(web: WebProcess) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (scripts/lib/services.sh installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with urllib.request.urlopen(f"{web.url}/v1/openapi.json", timeout=10) as response:
        document = json.load(response)
    operations = sorted(f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods)
    foreign: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: None if r.url.startswith(web.url) else foreign.append(r.url))
            page.goto(f"{web.url}/docs")
            page.wait_for_selector(".opblock", timeout=60_000)
            shown = page.eval_on_selector_all(
                ".opblock",
                "blocks => blocks.map(b => b.querySelector('.opblock-summary-method').textContent + ' ' +"
                " b.querySelector('.opblock-summary-path').getAttribute('data-path'))",
            )
            title = page.text_content(".info .title") or ""
        finally:
            browser.close()
    assert sorted(shown) == operations
    assert title.startswith("satworks intake API")
    assert foreign == [], "the page asked another origin"
