"""The web process against slow, broken and too many clients (issue 8): each is cut off or answered in the
one error shape, counted, and none is logged as an error of ours. A real ``satworks web`` process: the
test server of aiohttp cancels handlers on disconnect, production does not."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satworks.settings import Settings
from tests.integration.test_errors import assert_error, jobs_of
from tests.support import WebProcess, wait_until


@pytest.fixture(scope="module")
def web(base_settings: Settings, tmp_path_factory: Any) -> Iterator[WebProcess]:
    settings = base_settings.model_copy(
        update={"http_header_timeout_s": 1.0, "http_body_timeout_s": 1.0, "http_max_connections": 4}
    )
    process = WebProcess(settings, Path(tmp_path_factory.mktemp("web")) / "web.log").start()
    yield process
    process.stop()


def metric(web: WebProcess, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(f"{web.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def problems_logged(web: WebProcess) -> list[str]:
    """Lines at warning level or above, and any traceback (the tests run the process at WARNING)."""
    return [line for line in web.log_lines() if '"level": "info"' not in line and '"level": "debug"' not in line]


async def connect(web: WebProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", web.settings.http_port)


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    raw = await asyncio.wait_for(reader.read(), timeout=30)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), raw[:300]
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def test_a_client_that_leaves_mid_body_is_not_logged_as_an_error(web: WebProcess, auth: Any, key: str) -> None:
    jobs_400 = 'satworks_http_requests_total{method="POST",route="/v1/jobs",status="400"}'
    before = metric(web, jobs_400)
    reader, writer = await connect(web)
    head = [
        "POST /v1/jobs HTTP/1.1",
        "Host: x",
        *(f"{name}: {value}" for name, value in auth.items()),
        "Content-Type: application/json",
        "Content-Length: 1000",
        "Expect: 100-continue",  # answered once the request reached the app: then the body is cut short
    ]
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)).startswith(b"HTTP/1.1 100")
    writer.write(b'{"type": "ca')
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    wait_until(lambda: metric(web, jobs_400) > before or None, what="the cut-off request to be counted")
    assert problems_logged(web) == []
    assert jobs_of(web.settings, key) == 0


@pytest.mark.parametrize(
    "header",
    [b"X-Long: " + b"a" * 20_000, b"X-Bad\x01Name: 1"],
    ids=["header-past-8190-bytes", "bad-header-name"],
)
async def test_a_malformed_request_head_is_400_in_the_one_error_shape_and_not_an_error_log(
    web: WebProcess, header: bytes
) -> None:
    reader, writer = await connect(web)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
    await writer.drain()
    status, body = await answer(reader)
    writer.close()
    assert status == 400
    assert_error(body, "bad_request")
    assert problems_logged(web) == []


async def test_a_client_trickling_its_headers_is_cut_off_and_counted(web: WebProcess) -> None:
    before = metric(web, "satworks_http_head_timeouts_total")
    reader, writer = await connect(web)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    closed_after = None
    started = time.monotonic()
    for line in range(60):  # one header line every 0.25 s: 15 s unless the server closes first
        try:
            writer.write(f"X-Trickle-{line}: 1\r\n".encode())
            await writer.drain()
        except ConnectionError:
            closed_after = time.monotonic() - started
            break
        try:
            if await asyncio.wait_for(reader.read(1024), timeout=0.25) == b"":
                closed_after = time.monotonic() - started
                break
        except TimeoutError:
            continue
        except ConnectionError:  # closed with our last line unread: the kernel answers with a reset
            closed_after = time.monotonic() - started
            break
    writer.close()
    assert closed_after is not None, "the server kept a trickling client for 15 s (its header timeout is 1 s)"
    wait_until(lambda: metric(web, "satworks_http_head_timeouts_total") == before + 1 or None, what="the count")


async def test_a_body_trickling_past_the_body_timeout_is_408_and_counted(web: WebProcess, auth: Any) -> None:
    before = metric(web, "satworks_http_request_timeouts_total")
    reader, writer = await connect(web)
    head = ["POST /v1/jobs HTTP/1.1", "Host: x", "Content-Type: application/json", "Content-Length: 100"]
    head += [f"{name}: {value}" for name, value in auth.items()]
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n")
    answered = None
    for _ in range(60):  # a byte every 0.25 s: 100 bytes take 25 s, the timeout is 1 s
        try:
            writer.write(b" ")
            await writer.drain()
            answered = await asyncio.wait_for(reader.read(65536), timeout=0.25)
            answered += await asyncio.wait_for(reader.read(), timeout=30)
            break
        except TimeoutError:
            continue
        except ConnectionError:
            break
    writer.close()
    assert answered, "no answer to a body trickling for 15 s"
    head_part, _, body = answered.partition(b"\r\n\r\n")
    assert head_part.split(b" ", 2)[1] == b"408", answered[:300]
    assert_error(json.loads(body), "request_timeout")
    assert metric(web, "satworks_http_request_timeouts_total") == before + 1
    assert problems_logged(web) == []


async def test_connections_past_the_cap_are_closed_unread_and_counted(base_settings: Settings, tmp_path: Path) -> None:
    settings = base_settings.model_copy(update={"http_max_connections": 3, "http_header_timeout_s": 60.0})
    web = WebProcess(settings, tmp_path / "web.log").start()
    try:
        held = [await connect(web) for _ in range(3)]
        reader, writer = await connect(web)
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""  # closed unread
        writer.close()
        for _, held_writer in held:
            held_writer.close()
            await held_writer.wait_closed()
        # Once the held connections are gone there is room again, and the refusal was counted.
        wait_until(lambda: metric(web, "satworks_http_connections_refused_total") >= 1 or None, what="room again")
        assert metric(web, "satworks_http_connections_refused_total") == 1
    finally:
        web.stop()
