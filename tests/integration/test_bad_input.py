"""Input that once reached a 500 (issue 8): each is now a 4xx in the one error shape, and nothing is stored."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from satworks import clock
from satworks.http.app import create_app
from satworks.signatures import HEADER as SIGNATURE_HEADER
from satworks.signatures import sign
from tests.integration.payments_stack import NODE_TOKEN, WATCHER_SECRET
from tests.integration.test_errors import assert_error, jobs_of
from tests.integration.test_payment_api import payments_of
from tests.support import scalar

DEEP = b"[" * 5_000 + b"]" * 5_000
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def api(aiohttp_client: Any, settings: Any) -> Any:
    configured = settings.model_copy(
        update={"bitcoind_webhook_token": NODE_TOKEN, "payment_webhook_secret": WATCHER_SECRET}
    )
    return await aiohttp_client(create_app(configured))


def payment(**fields: Any) -> bytes:
    return json.dumps({"method": "onchain", "amount_sat": 1_000, **fields}).encode()


def raw_metadata(metadata: bytes) -> bytes:
    return b'{"method": "onchain", "amount_sat": 1000, "metadata": ' + metadata + b"}"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/jobs", DEEP, 400, "bad_request"),
        ("/v1/jobs", b'{"type": "canary", "payload": {"note": ' + DEEP + b"}}", 400, "bad_request"),
        (
            "/v1/jobs",
            json.dumps(
                {"type": "canary", "payload": {"n": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}
            ).encode(),
            400,
            "bad_request",
        ),
        ("/v1/payments", DEEP, 400, "bad_request"),
        ("/v1/payments", payment(memo="a\u0000b"), 422, "validation_failed"),
        ("/v1/payments", payment(idempotency_key="k\u0000"), 422, "validation_failed"),
        ("/v1/payments", payment(metadata={"a\u0000": 1}), 422, "validation_failed"),
        ("/v1/payments", payment(metadata={"a": ["\u0000"]}), 422, "validation_failed"),
        ("/v1/payments", b'{"method": "onchain", "amount_sat": 1000, "metadata": {"a": NaN}}', 400, "bad_request"),
        (
            "/v1/payments",
            b'{"method": "onchain", "amount_sat": 1000, "metadata": {"a": -Infinity}}',
            400,
            "bad_request",
        ),
        ("/v1/payments", b'{"method": "onchain", "amount_sat": 1000, "metadata": {"a": 1e999}}', 400, "bad_request"),
        (
            "/v1/payments",
            b'{"method": "onchain", "amount_sat": 1000, "metadata": {"a": "\\ud800"}}',
            422,
            "validation_failed",
        ),
        (
            "/v1/payments",
            b'{"method": "onchain", "amount_sat": 1000, "metadata": {"\\udfff": 1}}',
            422,
            "validation_failed",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None,
)
async def test_bodies_that_were_a_500_are_refused_and_store_nothing(
    api: Any, auth: Any, key: str, settings: Any, path: str, body: bytes, status: int, code: str
) -> None:
    response = await api.post(path, data=body, headers={**auth, **JSON})
    assert response.status == status, await response.text()
    assert_error(await response.json(), code)
    assert (jobs_of(settings, key), payments_of(settings, key)) == (0, 0)


async def test_a_refused_body_names_the_place_of_the_text_postgres_cannot_store(api: Any, auth: Any) -> None:
    response = await api.post(
        "/v1/payments", data=payment(metadata={"cart": [{"sku": "a\u0000"}]}), headers={**auth, **JSON}
    )
    assert response.status == 422
    (problem,) = (await response.json())["error"]["details"]["errors"]
    assert problem == {
        "loc": ["metadata", "cart", 0, "sku"],
        "msg": "text must not contain U+0000",
        "type": "unstorable_text",
    }


async def test_json_nesting_is_limited_by_the_setting(aiohttp_client: Any, settings: Any, auth: Any) -> None:
    client = await aiohttp_client(create_app(settings.model_copy(update={"max_json_depth": 3})))
    ok = {"type": "canary", "payload": {"note": "x"}}  # depth 2
    deep = {"type": "canary", "payload": {"note": [[1]]}}  # depth 4
    assert (await client.post("/v1/jobs", json=ok, headers=auth)).status == 202
    response = await client.post("/v1/jobs", json=deep, headers=auth)
    assert response.status == 400
    assert (await response.json())["error"]["details"] == {"errors": [], "max_depth": 3}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/payments", {"Idempotency-Key": "k" * 300}),
        ("/v1/jobs", {"Idempotency-Key": "k" * 300}),
    ],
)
async def test_an_overlong_idempotency_key_header_is_422(
    api: Any, auth: Any, key: str, settings: Any, path: str, headers: dict[str, str]
) -> None:
    body = {"type": "canary"} if path == "/v1/jobs" else {"method": "onchain", "amount_sat": 1_000}
    response = await api.post(path, json=body, headers={**auth, **headers})
    assert response.status == 422
    assert (await response.json())["error"]["details"]["errors"][0]["loc"] == ["Idempotency-Key"]
    assert (jobs_of(settings, key), payments_of(settings, key)) == (0, 0)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/payments"])
async def test_an_idempotency_key_header_that_is_not_utf8_is_422(
    api: Any, auth: Any, key: str, settings: Any, path: str
) -> None:
    body = {"type": "canary"} if path == "/v1/jobs" else {"method": "onchain", "amount_sat": 1_000}
    raw = json.dumps(body).encode()
    status, answer = await raw_request(api, "POST", path, auth, {"Idempotency-Key": b"k\xff\xfe", **_ct()}, raw)
    assert status == 422, answer
    assert_error(json.loads(answer), "validation_failed")
    assert (jobs_of(settings, key), payments_of(settings, key)) == (0, 0)


async def test_a_node_token_that_is_not_utf8_is_401(api: Any) -> None:
    status, answer = await raw_request(
        api, "POST", "/v1/webhooks/bitcoind/blocknotify?blockhash=" + "0" * 64, {}, {NODE_HEADER: b"\xff\xfe"}, b""
    )
    assert status == 401, answer
    assert_error(json.loads(answer), "unauthorized")


NODE_HEADER = "X-Satworks-Node-Token"


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/payments"])
@pytest.mark.parametrize(
    "query",
    [
        "cursor=czk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
        "cursor=cy0x",
        "cursor=c8KyMw",
        "cursor=%00",
        "limit=%00",
        "status=%00",
    ],
)
async def test_query_strings_that_were_a_500_are_422(api: Any, auth: Any, path: str, query: str) -> None:
    response = await api.get(f"{path}?{query}", headers=auth)
    assert response.status == 422, await response.text()
    assert_error(await response.json(), "validation_failed")


async def test_a_job_type_filter_with_u0000_is_422(api: Any, auth: Any) -> None:
    response = await api.get("/v1/jobs?type=%00", headers=auth)
    assert response.status == 422
    assert (await response.json())["error"]["details"]["errors"][0]["loc"] == ["type"]


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 5_000, "-1", "1e9", "\u0661\u0662"])
async def test_a_watcher_signature_with_a_strange_timestamp_is_401(api: Any, timestamp: str) -> None:
    body = json.dumps({"id": "evt", "event": "payment.confirmed", "data": {"payment_id": str(uuid.uuid4())}}).encode()
    signature = f"t={timestamp},v1=" + "0" * 64
    status, answer = await raw_request(
        api, "POST", "/v1/webhooks/payments", {}, {SIGNATURE_HEADER: signature.encode(), **_ct()}, body
    )
    assert status == 401, answer
    assert_error(json.loads(answer), "unauthorized")


async def test_a_signed_watcher_event_whose_id_holds_u0000_is_422_and_not_recorded(api: Any, settings: Any) -> None:
    event_id = f"evt-{uuid.uuid4().hex}\u0000"
    body = json.dumps({"id": event_id, "event": "payment.confirmed", "data": {"payment_id": str(uuid.uuid4())}})
    signature = sign(body.encode(), WATCHER_SECRET, clock.unix_s())
    response = await api.post("/v1/webhooks/payments", data=body, headers={SIGNATURE_HEADER: signature, **JSON})
    assert response.status == 422
    assert_error(await response.json(), "validation_failed")
    assert scalar(settings, "SELECT count(*) FROM webhook_receipts WHERE event_id LIKE %s", event_id[:20] + "%") == 0


def _ct() -> dict[str, bytes]:
    return {"Content-Type": b"application/json"}


async def raw_request(
    api: Any, method: str, path: str, headers: dict[str, str], raw_headers: dict[str, bytes], body: bytes
) -> tuple[int, str]:
    """One HTTP/1.1 request written by hand, so header values can be bytes no client library would send."""
    reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {api.server.host}".encode(), b"Connection: close"]
    headers = {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.0.7", **headers}
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    lines += [name.encode() + b": " + value for name, value in raw_headers.items()]
    lines.append(f"Content-Length: {len(body)}".encode())
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=30)
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        payload = _unchunk(payload)
    return status, payload.decode(errors="replace")


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


@pytest.mark.parametrize("webhook", ["node", "watcher"])
async def test_wrong_webhook_credentials_are_rate_limited_per_client_address(api: Any, webhook: str) -> None:
    address = {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.3"}
    body = json.dumps({"id": "e", "event": "payment.confirmed", "data": {"payment_id": str(uuid.uuid4())}})

    async def attempt(right: bool) -> int:
        if webhook == "node":
            token = NODE_TOKEN if right else "wrong"
            path = "/v1/webhooks/bitcoind/blocknotify?blockhash=" + "0" * 64
            return int((await api.post(path, headers={**address, NODE_HEADER: token})).status)
        secret = WATCHER_SECRET if right else "wrong-secret"
        signature = sign(body.encode(), secret, clock.unix_s())
        headers = {**address, SIGNATURE_HEADER: signature, **JSON}
        return int((await api.post("/v1/webhooks/payments", data=body, headers=headers)).status)

    statuses = [await attempt(right=False) for _ in range(6)]  # the tests allow 5 failures a minute
    assert statuses == [401] * 5 + [429]
    assert await attempt(right=True) == 429  # that address waits out the window, even with the right one
    other = {"X-Forwarded-For": "10.251.0.3"}
    address.update(other)
    assert await attempt(right=True) != 429  # another address is not affected


async def test_deep_json_on_the_webhooks_is_400(api: Any) -> None:
    shallow_deep = b"[" * 1_500 + b"]" * 1_500  # 3,000 bytes: under the node's limit, far past the depth
    node = await api.post(
        "/v1/webhooks/bitcoind/walletnotify", data=shallow_deep, headers={NODE_HEADER: NODE_TOKEN, **JSON}
    )
    assert node.status == 400
    assert_error(await node.json(), "bad_request")
    signature = sign(DEEP, WATCHER_SECRET, clock.unix_s())
    watcher = await api.post("/v1/webhooks/payments", data=DEEP, headers={SIGNATURE_HEADER: signature, **JSON})
    assert watcher.status == 400
    assert (await watcher.json())["error"]["details"]["max_depth"] == 32
