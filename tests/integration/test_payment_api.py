"""Payment request intake and webhooks: validation, idempotency, isolation, signatures and replays."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg
import pytest
import redis

from satworks.http import context as ctx
from satworks.http.app import create_app
from satworks.intake.recovery import requeue_stranded_payments
from satworks.integrations.bitcoin.address import encode_segwit_address
from satworks.signatures import sign
from tests.integration.payments_stack import NODE_TOKEN, WATCHER_SECRET
from tests.integration.test_errors import assert_error
from tests.support import db_dsn, eventually, message_in_broker, scalar


@pytest.fixture
async def api(aiohttp_client: Any, settings: Any) -> Any:
    configured = settings.model_copy(
        update={"bitcoind_webhook_token": NODE_TOKEN, "payment_webhook_secret": WATCHER_SECRET}
    )
    return await aiohttp_client(create_app(configured))


def payments_of(settings: Any, key: str) -> int:
    key_id = key.split("_")[1]
    sql = "SELECT count(*) FROM payment_requests p JOIN apps a ON a.id = p.app_id WHERE a.key_id = %s"
    return int(scalar(settings, sql, key_id))


async def create(api: Any, auth: dict[str, str], **body: Any) -> Any:
    return await api.post("/v1/payments", json={"method": "onchain", **body}, headers=auth)


async def test_payment_request_is_accepted_as_creating_until_the_node_gives_an_address(api: Any, auth: Any) -> None:
    response = await create(api, auth, amount_sat=1_000, memo="tea", metadata={"cart": [1, 2]})
    assert response.status == 202
    payment = await response.json()
    assert payment["status"] == "creating"
    assert (payment["address"], payment["txids"], payment["received_sat"]) == (None, [], 0)
    assert (payment["required_confirmations"], payment["monitoring_s"]) == (1, 86_400)
    assert payment["payment_tolerance"] in ("0", "0.00", 0)
    read = await (await api.get(f"/v1/payments/{payment['id']}", headers=auth)).json()
    assert read["id"] == payment["id"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"amount_sat": 0}, "amount_sat"),
        ({"amount_sat": -5}, "amount_sat"),
        ({"amount_sat": 1.5}, "amount_sat"),
        ({"amount_sat": "1000"}, "amount_sat"),
        ({"amount_sat": 2_100_000_000_000_001}, "amount_sat"),
        ({"amount_sat": 1_000, "method": "lnurl"}, "method"),
        ({"amount_sat": 1_000, "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}, "regtest"),
        ({"amount_sat": 1_000, "address": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081"}, "regtest"),
        ({"amount_sat": 1_000, "confirmations": -1}, "confirmations"),
        ({"amount_sat": 1_000, "payment_tolerance": 100}, "payment_tolerance"),
        ({"amount_sat": 1_000, "payment_tolerance": "1.234"}, "payment_tolerance"),
        ({"amount_sat": 1_000, "metadata": {"blob": "x" * 5000}}, "metadata"),
        ({"amount_sat": 1_000, "surprise": True}, "surprise"),
    ],
)
async def test_invalid_payment_request_is_422_and_nothing_is_stored(
    api: Any, auth: Any, key: str, settings: Any, body: dict[str, Any], where: str
) -> None:
    response = await create(api, auth, **body)
    assert response.status == 422
    error = await response.json()
    assert_error(error, "validation_failed")
    assert where in json.dumps(error)
    assert payments_of(settings, key) == 0


async def test_same_idempotency_key_returns_the_same_payment_and_a_different_body_conflicts(
    api: Any, auth: Any
) -> None:
    first = await (await create(api, auth, amount_sat=5_000, idempotency_key="inv-9")).json()
    again = await create(api, auth, amount_sat=5_000, idempotency_key="inv-9")
    assert (again.status, (await again.json())["id"]) == (202, first["id"])
    assert again.headers["Idempotent-Replayed"] == "true"
    different = await create(api, auth, amount_sat=6_000, idempotency_key="inv-9")
    assert different.status == 409


async def test_one_address_cannot_back_two_requests(api: Any, auth: Any) -> None:
    address = encode_segwit_address("regtest", 0, uuid.uuid4().bytes + b"\0\0\0\0")
    assert (await create(api, auth, amount_sat=1_000, address=address)).status == 202
    second = await create(api, auth, amount_sat=1_000, address=address)
    assert second.status == 409


async def test_an_address_in_upper_case_is_the_same_address(api: Any, auth: Any, make_key: Any) -> None:
    address = encode_segwit_address("regtest", 0, uuid.uuid4().bytes + b"\0\0\0\0")
    first = await create(api, auth, amount_sat=1_000, address=address.upper(), idempotency_key="upper")
    assert first.status == 202
    assert (await first.json())["address"] == address
    # Another app cannot watch it under another spelling; the same app's retry in lower case replays.
    other = {"Authorization": f"Bearer {make_key()}", "X-Forwarded-For": "10.77.0.1"}
    assert (await create(api, other, amount_sat=1_000, address=address)).status == 409
    again = await create(api, auth, amount_sat=1_000, address=address, idempotency_key="upper")
    assert (again.status, (await again.json())["id"]) == (202, (await first.json())["id"])


async def test_payments_are_isolated_between_apps(api: Any, auth: Any, make_key: Any) -> None:
    payment = await (await create(api, auth, amount_sat=1_000)).json()
    other = {"Authorization": f"Bearer {make_key()}"}
    assert (await api.get(f"/v1/payments/{payment['id']}", headers=other)).status == 404
    assert (await (await api.get("/v1/payments", headers=other)).json())["items"] == []
    mine = await (await api.get("/v1/payments", params={"status": "creating"}, headers=auth)).json()
    assert [p["id"] for p in mine["items"]] == [payment["id"]]


def signed(
    body: dict[str, Any], *, at: int | None = None, secret: str = WATCHER_SECRET
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    header = sign(raw, secret, int(time.time()) if at is None else at)
    return raw, {"X-Satworks-Signature": header, "Content-Type": "application/json"}


async def test_signed_watcher_event_is_accepted_once_and_its_replay_refused(api: Any, auth: Any, settings: Any) -> None:
    payment = await (await create(api, auth, amount_sat=1_000)).json()
    event = {
        "id": f"evt-{uuid.uuid4()}",
        "event": "payment.confirmed",
        "data": {"payment_id": payment["id"], "amount_sat": 999_999_999},
    }
    raw, headers = signed(event)
    accepted = await api.post("/v1/webhooks/payments", data=raw, headers=headers)
    assert accepted.status == 202
    replay = await api.post("/v1/webhooks/payments", data=raw, headers=headers)
    assert replay.status == 409
    assert_error(await replay.json(), "conflict")
    # The event's amount is never used: the payment did not change.
    assert scalar(settings, "SELECT received_sat FROM payment_requests WHERE id = %s", payment["id"]) == 0


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "stale", "future", "body_changed", "missing"],
)
async def test_bad_or_stale_signatures_are_401(api: Any, auth: Any, tamper: str) -> None:
    payment = await (await create(api, auth, amount_sat=1_000)).json()
    event = {"id": f"evt-{uuid.uuid4()}", "event": "payment.confirmed", "data": {"payment_id": payment["id"]}}
    now = int(time.time())
    raw, headers = signed(
        event,
        at={"stale": now - 301, "future": now + 301}.get(tamper),
        secret="another-secret-0123456789" if tamper == "wrong_secret" else WATCHER_SECRET,
    )
    if tamper == "body_changed":
        raw = raw.replace(b"payment.confirmed", b"payment.settled!!")
    if tamper == "missing":
        del headers["X-Satworks-Signature"]
    response = await api.post("/v1/webhooks/payments", data=raw, headers=headers)
    assert response.status == 401
    assert_error(await response.json(), "unauthorized")


async def test_watcher_event_for_an_unknown_payment_is_404_and_can_be_sent_again(api: Any) -> None:
    event = {"id": "evt-unknown", "event": "payment.confirmed", "data": {"payment_id": str(uuid.uuid4())}}
    raw, headers = signed(event)
    assert (await api.post("/v1/webhooks/payments", data=raw, headers=headers)).status == 404
    assert (await api.post("/v1/webhooks/payments", data=raw, headers=headers)).status == 404


async def test_node_notifications_need_the_node_token_and_a_valid_id(api: Any) -> None:
    txid = "ab" * 32
    path = "/v1/webhooks/bitcoind/walletnotify"
    assert (await api.post(path, params={"txid": txid})).status == 401
    assert (await api.post(path, params={"txid": txid, "token": "wrong-token-0123456789"})).status == 401
    assert (await api.post(path, params={"txid": "xyz", "token": NODE_TOKEN})).status == 422
    assert (await api.post(path, params={"txid": txid, "token": NODE_TOKEN})).status == 202
    by_header = {"X-Satworks-Node-Token": NODE_TOKEN}
    assert (await api.post(path, data=txid, headers={**by_header, "Content-Type": "text/plain"})).status == 202
    assert (await api.post(path, json={"txid": txid}, headers=by_header)).status == 202
    block = await api.post("/v1/webhooks/bitcoind/blocknotify", params={"blockhash": "cd" * 32}, headers=by_header)
    assert block.status == 202


async def test_webhooks_are_404_when_not_configured(client: Any) -> None:
    assert (await client.post("/v1/webhooks/payments", json={})).status == 404
    assert (await client.post("/v1/webhooks/bitcoind/walletnotify", params={"txid": "ab" * 32})).status == 404


async def test_payment_stuck_in_creating_gets_its_address_job_again(api: Any, auth: Any, settings: Any) -> None:
    payment = await (await create(api, auth, amount_sat=1_000)).json()
    with psycopg.connect(db_dsn(settings)) as conn:
        conn.execute(
            "UPDATE payment_requests SET created_at = now() - interval '5 minutes' WHERE id = %s", (payment["id"],)
        )
    intake = api.server.app[ctx.INTAKE]
    moved = await requeue_stranded_payments(
        intake.engine, intake.client, older_than_s=60, queue_prefix=settings.queue_prefix, max_gap_s=900
    )
    assert moved >= 1
    assert message_in_broker(settings, payment["id"])


async def test_broker_down_is_503_and_stores_no_payment(aiohttp_client: Any, settings: Any, key: str) -> None:
    down = await aiohttp_client(create_app(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})))
    response = await create(down, {"Authorization": f"Bearer {key}"}, amount_sat=1_000)
    assert response.status == 503
    assert (await response.json())["error"]["details"] == {"errors": [], "dependency": "broker"}
    assert payments_of(settings, key) == 0


async def test_a_stranded_request_is_sent_again_with_growing_gaps_not_every_sweep(
    api: Any, auth: Any, settings: Any
) -> None:
    payment = await (await create(api, auth, amount_sat=1_000)).json()
    intake = api.server.app[ctx.INTAKE]

    def age(created_ago: str, requeued_ago: str | None) -> None:
        with psycopg.connect(db_dsn(settings)) as conn:
            conn.execute(
                "UPDATE payment_requests SET created_at = now() - %s::interval,"
                " requeued_at = now() - %s::interval WHERE id = %s",
                (created_ago, requeued_ago, payment["id"]),
            )

    def requeued_at() -> Any:
        with psycopg.connect(db_dsn(settings)) as conn:
            row = conn.execute("SELECT requeued_at FROM payment_requests WHERE id = %s", (payment["id"],)).fetchone()
        return row[0] if row else None

    async def sweep() -> None:
        await requeue_stranded_payments(
            intake.engine, intake.client, older_than_s=60, queue_prefix=settings.queue_prefix, max_gap_s=3600
        )

    age("5 minutes", None)
    await sweep()
    first = requeued_at()
    assert first is not None
    await sweep()  # 30 s later in production: stuck 5 min at the last re-send, so the next waits 5 min
    assert requeued_at() == first
    age("30 minutes", "6 minutes")  # stuck 24 min at the last re-send: not due for 24 min
    await sweep()
    assert requeued_at() < first
    age("11 minutes", "6 minutes")  # stuck 5 min at the last re-send, 6 min ago: due
    await sweep()
    assert requeued_at() > first


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"confirmations": 1}, "confirmations"),
        ({"address": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"}, "address"),
        ({"payment_tolerance": 1}, "payment_tolerance"),
        ({"monitoring_s": 60}, "monitoring_s"),
        ({"memo": "é" * 320}, "memo"),  # 320 characters, 640 bytes: one over BOLT11's 639
        ({"amount_sat": 100_000 * 100_000_000 + 1}, "amount_sat"),
    ],
)
async def test_lightning_request_refuses_what_an_invoice_cannot_hold_with_422_and_stores_nothing(
    api: Any, auth: Any, key: str, settings: Any, body: dict[str, Any], where: str
) -> None:
    response = await create(api, auth, **{"method": "lightning", "amount_sat": 1_000, **body})
    assert response.status == 422
    error = await response.json()
    assert_error(error, "validation_failed")
    assert where in json.dumps(error)
    assert payments_of(settings, key) == 0


async def test_lightning_request_stuck_in_creating_gets_its_invoice_job_again(
    api: Any, auth: Any, settings: Any
) -> None:
    response = await create(api, auth, method="lightning", amount_sat=1_000, memo="é" * 319)
    assert response.status == 202
    payment = await response.json()
    assert (payment["method"], payment["required_confirmations"], payment["monitoring_s"]) == ("lightning", 0, 0)
    with psycopg.connect(db_dsn(settings)) as conn:
        conn.execute(
            "UPDATE payment_requests SET created_at = now() - interval '5 minutes' WHERE id = %s", (payment["id"],)
        )
    intake = api.server.app[ctx.INTAKE]
    # Re-sent on a prefix no worker consumes, so the message is there to be read (the session's worker may
    # already have taken the first one).
    quiet = settings.queue_prefix + "stranded_"

    async def resent() -> int:  # SKIP LOCKED: a worker trying the first invoice job holds the row meanwhile
        return await requeue_stranded_payments(
            intake.engine, intake.client, older_than_s=60, queue_prefix=quiet, max_gap_s=900
        )

    try:
        await eventually(resent, timeout_s=30, what="the stranded request to be re-sent")
    except AssertionError as exc:  # say what the request was instead
        row = "SELECT status || ' requeued_at=' || coalesce(requeued_at::text, '-') FROM payment_requests WHERE id = %s"
        raise AssertionError(f"{exc}; the request: {scalar(settings, row, payment['id'])}") from None
    assert invoice_jobs(settings, quiet, payment["id"]) == 1


def invoice_jobs(settings: Any, queue_prefix: str, payment_id: str) -> int:
    """``lightning.create_invoice`` messages for ``payment_id`` waiting on ``critical`` under ``queue_prefix``."""
    client = redis.Redis.from_url(settings.effective_broker_url)
    try:
        messages = [json.loads(m) for m in client.hvals(f"satworks:{queue_prefix}critical.msgs")]
    finally:
        client.close()
    return sum(1 for m in messages if m["actor_name"] == "lightning.create_invoice" and m["args"] == [payment_id])
