"""Draws end to end: HTTP intake, worker processes and the regtest node simulator (docs/draws.md).

Commit, mine to the beacon height, the draw completes and the CLI verifies the downloaded proof against
the node; a reorg at the beacon height before the confirmations; several draw jobs at once; the node down
at draw time; validation that stores nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from satworks import clock
from satworks.cli import main
from satworks.db import draw_states
from satworks.db.draw_states import DrawResult
from satworks.db.engine import sync_engine
from satworks.http import context as ctx
from satworks.settings import Settings
from tests.integration.draws_stack import DrawStack, entries, running_draw_stack
from tests.integration.lightning_stack import scrape
from tests.platform_support import submit_as_scheduler
from tests.support import db_dsn, eventually, scalar


@pytest.fixture
async def stack(base_settings: Settings, make_key: Any, aiohttp_client: Any) -> AsyncIterator[DrawStack]:
    async with running_draw_stack(base_settings, make_key, aiohttp_client) as running:
        yield running


@pytest.fixture
async def quiet_stack(base_settings: Settings, make_key: Any, aiohttp_client: Any) -> AsyncIterator[DrawStack]:
    """A node that notifies nobody: the test says when a block arrived."""
    async with running_draw_stack(base_settings, make_key, aiohttp_client, blocknotify=False) as running:
        yield running


def body(height: int, *, n: int = 40, winners: int = 3, confirmations: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "raffle_id": extra.pop("raffle_id", "spring-raffle"),
        "entries": extra.pop("entries", entries(n)),
        "winners": winners,
        "beacon": {"type": "bitcoin_block", "height": height},
        "confirmations": confirmations,
        "metadata": {"prize": "a bicycle"},
        **extra,
    }


async def test_commit_mine_draw_and_verify_with_the_cli(
    stack: DrawStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    height = await stack.tip() + 1
    response = await stack.post(body(height), headers={"Idempotency-Key": "raffle-1"})
    assert response.status == 202, await response.text()
    committed = await response.json()
    assert committed["status"] in ("committed", "waiting")
    assert committed["algorithm"] == "satworks-draw-v1"
    assert len(committed["commitment"]) == 64
    assert committed["beacon"]["height"] == height
    draw_id = committed["id"]

    replay = await stack.post(body(height), headers={"Idempotency-Key": "raffle-1"})
    assert replay.status == 202 and replay.headers.get("Idempotent-Replayed") == "true"
    assert (await replay.json())["id"] == draw_id

    await stack.wait_for(draw_id, "waiting")
    await stack.mine(1)  # the beacon block: one confirmation of the two required
    confirming = await stack.wait_for(draw_id, "confirming")
    beacon_hash = await stack.block_hash(height)
    assert confirming["beacon"]["block_hash"] == beacon_hash
    assert confirming["winners"] == []

    await stack.mine(1)
    done = await stack.wait_for(draw_id, "completed")
    assert done["beacon"]["block_hash"] == beacon_hash
    assert done["commitment"] == committed["commitment"]
    assert len(done["winners"]) == 3 and len({w["id"] for w in done["winners"]}) == 3
    assert all(w["ticket"] >= 1 for w in done["winners"])

    proof = await stack.client.get(f"/v1/draws/{draw_id}/proof", headers=stack.auth)
    assert proof.status == 200
    document = await proof.json()
    assert document["commitment"] == committed["commitment"]
    assert [{"id": w["id"], "ticket": w["ticket"]} for w in document["winners"]] == done["winners"]
    path = tmp_path / "proof.json"
    path.write_bytes(await proof.read())
    assert main(["draw", "verify", str(path), "--node", stack.node.url, "--timeout-s", "5"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("match: ") and out.endswith("the node agrees on the block hash")

    assert [(a, b) for a, b, _ in stack.audit(draw_id)] == [
        (None, "committed"),
        ("committed", "waiting"),
        ("waiting", "confirming"),
        ("confirming", "completed"),
    ]
    events = stack.events(draw_id)
    assert [e["type"] for e in events] == ["draw.committed", "draw.completed"]
    assert events[1]["data"]["winners"] == done["winners"]

    # The worker counted it (after its commit, so polled): one completed, none refused, one duration
    async def counted() -> dict[str, float] | None:
        samples = scrape(stack.settings.worker_metrics_port)
        return samples if samples.get("satworks_draws_finished_total{outcome=completed}") == 1.0 else None

    samples = await eventually(counted, what="the worker to count the completed draw")
    assert samples["satworks_draws_finished_total{outcome=refused}"] == 0.0
    assert samples["satworks_draw_duration_seconds_count"] == 1.0


async def test_a_block_mined_right_after_the_202_is_the_beacon(stack: DrawStack) -> None:
    """The intake read the tip after the commit: the draw job need not ask again, so a block mined before
    that job runs cannot get the draw refused."""
    height = await stack.tip() + 1
    draw = await stack.commit(**body(height, confirmations=1))
    assert draw["status"] == "committed"
    (beacon,) = await stack.mine(1)
    done = await stack.wait_for(draw["id"], "completed")
    assert done["beacon"]["block_hash"] == beacon
    assert [e["type"] for e in stack.events(draw["id"])] == ["draw.committed", "draw.completed"]


async def test_a_large_draw_is_prepared_while_the_event_loop_answers_others(stack: DrawStack) -> None:
    """300,000 entries are parsed, sorted and committed in the intake's preparing process: while that
    runs, the same web process answers other requests."""
    intake = stack.client.app[ctx.INTAKE].draws  # type: ignore[index]
    big = [{"id": f"player-{i:07d}", "tickets": 1 + i % 9} for i in range(300_000)]
    payload = io.BytesIO(json.dumps(body(await stack.tip() + 5, entries=big, winners=10)).encode())
    headers = {**stack.auth, "Content-Type": "application/json"}
    posting = asyncio.create_task(stack.client.post("/v1/draws", data=payload, headers=headers))

    async def preparing() -> bool | None:
        if posting.done():
            raise AssertionError(f"answered before it was seen preparing: {await posting.result().text()}")
        return True if intake.preparing else None

    await eventually(preparing, timeout_s=60, what="the body to be in the preparing process")
    health = await stack.client.get("/health")
    assert health.status == 200
    assert not posting.done() and intake.preparing == 1  # answered while the draw was still being prepared
    response = await posting
    assert response.status == 202, await response.text()
    draw = await response.json()
    assert (draw["entries_count"], draw["total_tickets"]) == (300_000, sum(e["tickets"] for e in big))


async def test_listing_by_raffle_and_status_with_a_cursor(stack: DrawStack) -> None:
    height = await stack.tip() + 50
    ids = [(await stack.commit(**body(height, raffle_id="listed", n=5, winners=1)))["id"] for _ in range(3)]
    await stack.commit(**body(height, raffle_id="other", n=5, winners=1))

    first = await stack.client.get("/v1/draws?raffle_id=listed&limit=2", headers=stack.auth)
    page = await first.json()
    assert [d["id"] for d in page["items"]] == ids[::-1][:2]
    second = await stack.client.get(
        f"/v1/draws?raffle_id=listed&limit=2&cursor={page['next_cursor']}", headers=stack.auth
    )
    rest = await second.json()
    assert [d["id"] for d in rest["items"]] == ids[:1] and rest["next_cursor"] is None

    completed = await stack.client.get("/v1/draws?status=completed", headers=stack.auth)
    assert (await completed.json())["items"] == []
    bad = await stack.client.get("/v1/draws?status=won", headers=stack.auth)
    assert bad.status == 422


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda b: b["entries"].append(dict(b["entries"][0])), "entries"),
        (lambda b: b.update(winners=41), "winners"),
        (lambda b: b["entries"][3].update(tickets=0), "entries"),
        (lambda b: b["entries"][3].update(tickets=-2), "entries"),
        (lambda b: b["entries"][3].update(colour="red"), "entries"),
        (lambda b: b["beacon"].update(type="eth_block"), "beacon"),
        (lambda b: b.update(confirmations=0), "confirmations"),
    ],
)
async def test_invalid_draws_are_422_and_store_nothing(stack: DrawStack, change: Any, where: str) -> None:
    request = body(await stack.tip() + 5)
    change(request)
    response = await stack.post(request)
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert where in str(error["details"])
    assert await stored(stack) == []


async def test_limits_are_422(base_settings: Settings, make_key: Any, aiohttp_client: Any) -> None:
    async with running_draw_stack(
        base_settings, make_key, aiohttp_client, worker=False, draw_max_entries=10, draw_max_total_tickets=30
    ) as stack:
        height = await stack.tip() + 5
        too_many = await stack.post(body(height, n=11, winners=1))
        assert too_many.status == 422
        heavy = await stack.post(body(height, n=5, winners=1, entries=[{"id": "a", "tickets": 31}]))
        assert heavy.status == 422
        assert await stored(stack) == []


async def test_a_beacon_the_chain_has_reached_is_422(stack: DrawStack) -> None:
    tip = await stack.tip()
    for height in (tip, tip - 1):
        response = await stack.post(body(height))
        assert response.status == 422
        error = (await response.json())["error"]
        assert error["details"]["errors"][0]["type"] == "beacon_not_in_future"
        assert error["details"]["errors"][0]["tip_height"] == tip
    assert await stored(stack) == []


async def test_a_node_that_cannot_be_asked_at_submission_is_503(stack: DrawStack) -> None:
    height = await stack.tip() + 5
    stack.node.sim_stop()
    try:
        response = await stack.post(body(height))
        assert response.status == 503, await response.text()
    finally:
        stack.node.sim_start()
    assert await stored(stack) == []


async def test_another_apps_draw_is_404_and_a_proof_before_completion_409(stack: DrawStack, make_key: Any) -> None:
    draw = await stack.commit(**body(await stack.tip() + 20))
    other = {"Authorization": f"Bearer {make_key()}"}
    assert (await stack.client.get(f"/v1/draws/{draw['id']}", headers=other)).status == 404
    early = await stack.client.get(f"/v1/draws/{draw['id']}/proof", headers=stack.auth)
    assert early.status == 409
    assert (await stack.client.get(f"/v1/draws/{uuid.uuid4()}", headers=stack.auth)).status == 404


async def test_a_reorg_at_the_beacon_height_before_the_confirmations_uses_the_new_block(stack: DrawStack) -> None:
    height = await stack.tip() + 1
    draw_id = (await stack.commit(**body(height, confirmations=3)))["id"]
    await stack.wait_for(draw_id, "waiting")
    (first,) = await stack.mine(1)
    await stack.wait_for(draw_id, "confirming", block_hash=first)

    await stack.rpc("invalidateblock", first)  # the beacon block leaves the chain
    replaced = await stack.mine(3)  # another block at the beacon height, with its three confirmations
    assert replaced[0] != first and await stack.block_hash(height) == replaced[0]
    done = await stack.wait_for(draw_id, "completed")
    assert done["beacon"]["block_hash"] == replaced[0]

    moves = stack.audit(draw_id)
    assert ("confirming", "confirming", replaced[0]) in moves or ("waiting", "confirming", replaced[0]) in moves
    assert moves[-1] == ("confirming", "completed", replaced[0])
    proof = await (await stack.client.get(f"/v1/draws/{draw_id}/proof", headers=stack.auth)).json()
    assert proof["beacon"]["block_hash"] == replaced[0]

    await stack.rpc("reconsiderblock", first)  # after the draw, the chain may do what it likes
    await stack.mine(1)
    await stack.notify_block()
    assert (await stack.get(draw_id))["beacon"]["block_hash"] == replaced[0]


async def test_many_draw_jobs_at_once_store_one_result(stack: DrawStack) -> None:
    height = await stack.tip() + 1
    ids = [(await stack.commit(**body(height, confirmations=1, raffle_id=f"r{i}")))["id"] for i in range(2)]
    for draw_id in ids:
        await stack.wait_for(draw_id, "waiting")
    await stack.mine(1)
    # Every run message at once, for both draws, beside the blocknotify's own: four worker threads race.
    for _ in range(4):
        for draw_id in ids:
            send_run(stack.settings, draw_id)
    for draw_id in ids:
        await stack.wait_for(draw_id, "completed")

    async def settled() -> bool | None:
        return True if not queued(stack.settings) else None

    await eventually(settled, timeout_s=30, what="every draw job to finish")
    for draw_id in ids:
        assert scalar(stack.settings, "SELECT count(*) FROM draw_results WHERE draw_id = %s", draw_id) == 1
        assert [m[1] for m in stack.audit(draw_id)].count("completed") == 1
        assert [e["type"] for e in stack.events(draw_id)].count("draw.completed") == 1


async def test_the_database_refuses_a_second_or_changed_result(stack: DrawStack) -> None:
    height = await stack.tip() + 1
    draw_id = (await stack.commit(**body(height, confirmations=1)))["id"]
    await stack.wait_for(draw_id, "waiting")
    await stack.mine(1)
    await stack.wait_for(draw_id, "completed")
    with psycopg.connect(db_dsn(stack.settings)) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO draw_results (draw_id, block_hash, confirmations, winners, proof_gz)"
                " VALUES (%s, %s, 1, '[]', '\\x00')",
                (draw_id, "00" * 32),
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE draw_results SET winners = '[]' WHERE draw_id = %s", (draw_id,))
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE draws SET status = 'waiting', completed_at = NULL WHERE id = %s", (draw_id,))


async def test_a_late_job_with_another_result_changes_nothing(stack: DrawStack) -> None:
    """A job that read the draw before it completed (a retry after a crash, a duplicate message) and drew
    on another block finds it completed: its result is not stored."""
    height = await stack.tip() + 1
    draw_id = (await stack.commit(**body(height, confirmations=2)))["id"]
    await stack.wait_for(draw_id, "waiting")
    await stack.mine(1)
    await stack.wait_for(draw_id, "confirming")
    engine = sync_engine(stack.settings.database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            stale = draw_states.load(conn, uuid.UUID(draw_id))
        assert stale is not None and stale.status == "confirming"
        await stack.mine(1)
        done = await stack.wait_for(draw_id, "completed")
        other = DrawResult(stale.block_hash or "", 2, [{"id": "entry-00000", "ticket": 1}], b"\x1f\x8b")
        with engine.begin() as conn:
            assert draw_states.complete(conn, stale, other, now=clock.utcnow()) is False
        forged = dataclasses.replace(other, block_hash="ee" * 32)
        with engine.begin() as conn:
            assert draw_states.complete(conn, stale, forged, now=clock.utcnow()) is False
    finally:
        engine.dispose()
    assert (await stack.get(draw_id))["winners"] == done["winners"]
    assert scalar(stack.settings, "SELECT count(*) FROM draw_results WHERE draw_id = %s", draw_id) == 1


async def test_the_node_down_at_draw_time_retries_and_draws_the_right_block(quiet_stack: DrawStack) -> None:
    stack = quiet_stack
    height = await stack.tip() + 1
    draw_id = (await stack.commit(**body(height, confirmations=1)))["id"]
    await stack.wait_for(draw_id, "waiting")
    (beacon,) = await stack.mine(1)
    stack.node.sim_stop()
    try:
        await stack.notify_block(beacon)  # the wake-up cannot read the tip: it is retried, nothing is decided

        async def retrying() -> bool | None:
            return True if retry_waiting(stack.settings) else None

        await eventually(retrying, timeout_s=30, what="the draw wake-up to be retried")
        assert (await stack.get(draw_id))["status"] == "waiting"
    finally:
        stack.node.sim_start()
    done = await stack.wait_for(draw_id, "completed", timeout_s=60)
    assert done["beacon"]["block_hash"] == beacon


async def test_the_scheduled_due_task_moves_draws_without_notifications(quiet_stack: DrawStack) -> None:
    stack = quiet_stack
    height = await stack.tip() + 1
    draw_id = (await stack.commit(**body(height, confirmations=1)))["id"]
    await stack.wait_for(draw_id, "waiting")
    await stack.mine(1)
    await asyncio.to_thread(submit_as_scheduler, stack.settings, "draws.due")
    assert (await stack.wait_for(draw_id, "completed"))["beacon"]["block_hash"] == await stack.block_hash(height)


async def stored(stack: DrawStack) -> list[str]:
    """The ids of the app's draws, read through the API (each stack has an app of its own)."""
    response = await stack.client.get("/v1/draws?limit=500", headers=stack.auth)
    assert response.status == 200
    return [d["id"] for d in (await response.json())["items"]]


# ---- the broker, read and written as the worker would


def send_run(settings: Settings, draw_id: str) -> None:
    from satworks.broker.build import build_broker
    from satworks.broker.client import payment_sender
    from satworks.jobs.draws import RUN

    broker = build_broker(settings)
    try:
        payment_sender(broker, settings.queue_prefix)(RUN, (draw_id,), None)
    finally:
        broker.close()


def queued(settings: Settings) -> int:
    client = redis.Redis.from_url(settings.effective_broker_url)
    try:
        return int(client.hlen(f"satworks:{settings.queue_prefix}critical.msgs"))
    finally:
        client.close()


def retry_waiting(settings: Settings) -> bool:
    """A draws.wake message waits in the delay queue with a retry count: the job failed and is retried."""
    client = redis.Redis.from_url(settings.effective_broker_url)
    try:
        values = client.hvals(f"satworks:{settings.queue_prefix}critical.DQ.msgs")
        return any(b"draws.wake" in v and b'"retries"' in v for v in values)
    finally:
        client.close()
