"""The email outbox end to end: ``POST /v1/emails`` → a row → a worker process's SMTP session with the
aiosmtpd sink; templates, idempotency, transient and permanent replies, the session cap."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from satworks.broker.build import build_broker
from satworks.devnodes.smtp.sink import Reply
from satworks.jobs.emails import send_message
from tests.integration.notify_stack import SMTP_CAP, NotifyStack
from tests.support import db_dsn, eventually, message_in_broker, scalar


def execute(settings: Any, statement: str, *params: Any) -> None:
    with psycopg.connect(db_dsn(settings)) as conn:
        conn.execute(statement, params)


async def _async(value: bool) -> bool:
    return value


async def _post(notify: NotifyStack, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {**notify.auth, **({"Idempotency-Key": key} if key else {})}
    return await notify.client.post("/v1/emails", json=body, headers=headers)


async def _email_when(notify: NotifyStack, email_id: str, *statuses: str, timeout_s: float = 30) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        email: dict[str, Any] = await notify.get(f"/v1/emails/{email_id}")
        return email if email["status"] in statuses else None

    return await eventually(check, timeout_s=timeout_s, what=f"email {email_id} {statuses}")


def _received(notify: NotifyStack, message_id: str) -> list[Any]:
    return [m for m in notify.env.sink.sink.store.all() if m.parsed()["Message-ID"] == message_id]


async def test_a_template_email_is_sent_with_escaped_html_a_text_part_and_its_message_id(notify: NotifyStack) -> None:
    body = {
        "to": ["Alice <alice@example.org>"],
        "template": "payment_settled",
        "context": {"customer_name": "<b>Alice</b>", "amount_sat": 125_000, "payment_id": "p-1", "memo": None},
    }
    response = await _post(notify, body, key="receipt-1")
    assert response.status == 202, await response.text()
    accepted = await response.json()
    assert accepted["status"] == "queued" and accepted["to"] == ["Alice <alice@example.org>"]

    sent = await _email_when(notify, accepted["id"], "sent")
    assert sent["attempts"] == 1 and sent["smtp_code"] == 250 and sent["message_id"] == accepted["message_id"]
    [message] = _received(notify, accepted["message_id"])
    parsed = message.parsed()
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "Hello <b>Alice</b>" in text and "125,000 sat" in text
    assert "&lt;b&gt;Alice&lt;/b&gt;" in html and "<b>Alice</b>" not in html
    assert parsed["Subject"].startswith("Payment received")

    replay = await _post(notify, body, key="receipt-1")
    assert replay.status == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert (await replay.json())["id"] == accepted["id"]
    conflict = await _post(notify, {**body, "to": ["bob@example.org"]}, key="receipt-1")
    assert conflict.status == 409


async def test_bad_addresses_templates_and_contexts_are_422_and_store_nothing(notify: NotifyStack) -> None:
    raw = {"subject": "Hi", "text": "Hello"}
    for body in (
        {"to": ["not-an-address"], **raw},
        {"to": ["alice@example.org", "bob@@example.org"], **raw},
        {"to": [], **raw},
        {"to": ["alice@example.org"], "template": "no_such_template", "context": {}},
        {"to": ["alice@example.org"], "template": "payment_settled", "context": {}},
        {"to": ["alice@example.org"], "template": "generic", "subject": "both"},
        {"to": ["alice@example.org"], "subject": "no text"},
    ):
        response = await _post(notify, body)
        assert response.status == 422, (body, await response.text())
        assert (await response.json())["error"]["code"] == "validation_failed"
    assert (await notify.get("/v1/emails"))["items"] == []


async def test_a_4xx_reply_is_retried_until_accepted(notify: NotifyStack) -> None:
    address = f"later-{uuid.uuid4().hex[:8]}@example.org"
    notify.env.replies[address] = Reply(451, "4.3.0 Try again later (test)")
    response = await _post(notify, {"to": [address], "subject": "Later", "text": "Eventually."})
    email = await response.json()

    async def retried() -> dict[str, Any] | None:
        found: dict[str, Any] = await notify.get(f"/v1/emails/{email['id']}")
        return found if found["attempts"] >= 2 else None

    waiting = await eventually(retried, what="two attempts")
    assert waiting["status"] == "retrying" and waiting["smtp_code"] == 451
    assert "Try again later" in waiting["smtp_reply"]
    del notify.env.replies[address]
    sent = await _email_when(notify, email["id"], "sent")
    assert sent["smtp_code"] == 250 and len(_received(notify, email["message_id"])) == 1


async def test_a_5xx_reply_fails_at_once_with_the_reply_recorded(notify: NotifyStack) -> None:
    response = await _post(notify, {"to": ["reject@example.org"], "subject": "No", "text": "Refused."})
    email = await response.json()
    failed = await _email_when(notify, email["id"], "failed")
    assert failed["attempts"] == 1 and failed["smtp_code"] == 550 and "Mailbox unavailable" in failed["smtp_reply"]
    assert _received(notify, email["message_id"]) == []


async def test_a_sent_email_is_never_sent_again(notify: NotifyStack) -> None:
    response = await _post(notify, {"to": ["once@example.org"], "subject": "Once", "text": "Only once."})
    email = await response.json()
    await _email_when(notify, email["id"], "sent")

    broker = build_broker(notify.settings)
    try:
        broker.enqueue(send_message(uuid.UUID(email["id"]), notify.settings.queue_prefix))  # a stray copy
        # The worker took it (only then is the count below meaningful), and a later email went out.
        await eventually(lambda: _gone(notify, email["id"]), what="the stray message consumed")
        follow = await _post(notify, {"to": ["after@example.org"], "subject": "After", "text": "Later one."})
        await _email_when(notify, (await follow.json())["id"], "sent")
    finally:
        broker.close()
    assert len(_received(notify, email["message_id"])) == 1
    assert scalar(notify.settings, "SELECT attempts FROM emails WHERE id = %s", email["id"]) == 1


async def _gone(notify: NotifyStack, email_id: str) -> bool:
    return not message_in_broker(notify.settings, email_id)


async def test_a_burst_never_opens_more_smtp_sessions_than_the_cap(notify: NotifyStack) -> None:
    sink = notify.env.sink
    sink.http("/stats/reset", method="POST")
    ids = []
    for n in range(24):
        response = await _post(notify, {"to": [f"burst{n}@example.org"], "subject": f"Burst {n}", "text": "..."})
        assert response.status == 202
        ids.append((await response.json())["id"])

    async def all_sent() -> bool:
        listing = await notify.get("/v1/emails", status="sent", limit=100)
        return len({e["id"] for e in listing["items"]} & set(ids)) == len(ids)

    await eventually(all_sent, timeout_s=60, what="the burst sent")
    stats = sink.http("/stats")
    assert stats["sessions_peak"] <= SMTP_CAP, stats
    assert stats["sessions_peak"] == SMTP_CAP, f"the burst should have used every slot: {stats}"


async def test_a_settled_payment_with_a_receipt_address_gets_one_receipt(notify: NotifyStack) -> None:
    body = {
        "method": "onchain",
        "amount_sat": 125_000,
        "address": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        "memo": "T-shirt",
    }
    response = await notify.client.post(
        "/v1/payments", json={**body, "receipt_email": "Carol <carol@example.org>"}, headers=notify.auth
    )
    assert response.status == 202, await response.text()
    payment = await response.json()
    assert payment["receipt_email"] == "Carol <carol@example.org>"
    # The settlement as db/payments.py records it (no node in this stack): the event row, twice over.
    for _ in range(2):
        execute(
            notify.settings,
            "INSERT INTO app_events (app_id, type, subject_id, data) SELECT app_id, 'payment.settled', id,"
            " '{}'::jsonb FROM payment_requests WHERE id = %s",
            payment["id"],
        )

    async def receipt() -> list[Any] | None:
        found = [m for m in notify.env.sink.sink.store.all() if "carol@example.org" in m.rcpt_tos]
        return found or None

    [message] = await eventually(receipt, what="the receipt in the sink")
    dispatched = "SELECT count(*) FROM app_events WHERE subject_id = %s AND delivered_at IS NOT NULL"
    await eventually(lambda: _async(scalar(notify.settings, dispatched, payment["id"]) == 2), what="both dispatched")
    text = message.parsed().get_body(("plain",)).get_content()
    assert "Hello Carol" in text and payment["id"] in text and "T-shirt" in text
    emails = (await notify.get("/v1/emails"))["items"]
    assert [e["template"] for e in emails] == ["payment_settled"]
