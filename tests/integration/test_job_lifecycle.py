"""A job's life through the HTTP API and real Dramatiq workers on Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from satworks.http import context as ctx
from satworks.intake.recovery import requeue_stranded_jobs
from tests.integration.jobs_helpers import get_job, post_job, wait_for_status
from tests.support import WorkerProcess, db_dsn, eventually, handed_to_broker, job_row, message_in_broker

pytestmark = pytest.mark.usefixtures("worker")


async def test_canary_is_recorded_before_the_answer_and_then_succeeds(client: Any, auth: Any, settings: Any) -> None:
    job = await post_job(client, auth, payload={"note": "hello"})
    assert job["status"] in ("queued", "running", "succeeded")
    assert job_row(settings, job["id"]) is not None  # durably recorded when 202 was answered
    done = await wait_for_status(client, auth, job["id"], "succeeded")
    assert done["attempts"] == 1
    assert done["result"]["attempt"] == 1
    assert done["payload"]["note"] == "hello"
    assert done["error"] is None
    assert done["started_at"] <= done["finished_at"]
    expected = {
        "id",
        "type",
        "status",
        "priority",
        "queue",
        "attempts",
        "max_retries",
        "payload",
        "result",
        "error",
        "idempotency_key",
        "created_at",
        "scheduled_for",
        "started_at",
        "finished_at",
        "next_retry_at",
    }
    assert set(done) == expected


@pytest.mark.parametrize(("priority", "queue"), [("high", "critical"), ("normal", "default"), ("low", "bulk")])
async def test_priority_selects_the_queue(client: Any, auth: Any, priority: str, queue: str) -> None:
    job = await post_job(client, auth, priority=priority)
    assert job["queue"] == queue
    assert (await wait_for_status(client, auth, job["id"], "succeeded"))["priority"] == priority


async def test_transient_failures_retry_with_backoff_until_success(client: Any, auth: Any) -> None:
    job = await post_job(client, auth, payload={"fail": "transient", "fail_attempts": 2})
    retrying = await wait_for_status(client, auth, job["id"], "retrying")
    assert retrying["error"]["type"] == "ChaosRetry"
    assert retrying["next_retry_at"] is not None
    assert retrying["next_retry_at"] > retrying["started_at"]
    done = await wait_for_status(client, auth, job["id"], "succeeded")
    assert done["attempts"] == 3
    assert done["next_retry_at"] is None


async def test_exhausted_retries_make_the_job_dead_and_dead_lettered(client: Any, auth: Any, make_key: Any) -> None:
    job = await post_job(client, auth, payload={"fail": "transient"}, max_retries=1)
    dead = await wait_for_status(client, auth, job["id"], "dead")
    assert dead["attempts"] == 2
    assert dead["error"] == {"type": "ChaosRetry", "message": "canary asked to fail (transient) on attempt 2"}
    admin = {"Authorization": f"Bearer {make_key(admin=True)}"}
    stats = await (await client.get("/v1/stats", headers=admin)).json()
    assert stats["queues"]["default"]["dead_letter"] >= 1
    assert stats["jobs_by_status"]["dead"] >= 1


async def test_permanent_error_fails_at_once(client: Any, auth: Any) -> None:
    job = await post_job(client, auth, payload={"fail": "permanent"}, max_retries=5)
    failed = await wait_for_status(client, auth, job["id"], "failed")
    assert failed["attempts"] == 1
    assert failed["error"]["type"] == "ChaosFailure"


async def test_delayed_job_is_scheduled_then_runs_after_its_time(client: Any, auth: Any) -> None:
    job = await post_job(client, auth, delay_seconds=1)
    assert job["status"] == "scheduled"
    scheduled_for = datetime.fromisoformat(job["scheduled_for"])
    done = await wait_for_status(client, auth, job["id"], "succeeded")
    assert datetime.fromisoformat(done["started_at"]) >= scheduled_for


async def test_run_at_in_the_past_runs_now(client: Any, auth: Any) -> None:
    job = await post_job(client, auth, run_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["scheduled_for"] is None
    await wait_for_status(client, auth, job["id"], "succeeded")


async def test_cancelled_job_never_runs_even_with_its_message_in_the_broker(
    client: Any, auth: Any, settings: Any
) -> None:
    job = await post_job(client, auth, delay_seconds=1)
    response = await client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"

    async def message_consumed() -> bool:
        return not message_in_broker(settings, job["id"])

    assert message_in_broker(settings, job["id"])
    await eventually(message_consumed, what="the delayed message to be consumed")
    after = await get_job(client, auth, job["id"])
    assert after["status"] == "cancelled"
    assert after["attempts"] == 0
    assert after["started_at"] is None


async def test_cancel_conflicts_once_the_job_runs_or_has_finished(client: Any, auth: Any) -> None:
    slow = await post_job(client, auth, payload={"sleep_ms": 1500})
    await wait_for_status(client, auth, slow["id"], "running")
    running = await client.post(f"/v1/jobs/{slow['id']}/cancel", headers=auth)
    assert running.status == 409
    assert (await running.json())["error"]["code"] == "conflict"
    await wait_for_status(client, auth, slow["id"], "succeeded")
    finished = await client.post(f"/v1/jobs/{slow['id']}/cancel", headers=auth)
    assert finished.status == 409
    assert (await get_job(client, auth, slow["id"]))["status"] == "succeeded"


async def test_stranded_job_is_handed_to_the_broker_by_the_sweep(
    client: Any, auth: Any, settings: Any, worker: WorkerProcess
) -> None:

    job = await post_job(client, auth, delay_seconds=3600)

    async def marked_enqueued() -> bool:
        return handed_to_broker(settings, job["id"])

    await eventually(marked_enqueued, what="the intake to mark it enqueued")

    # Simulate an intake that died between commit and enqueue: the row and its marker exist, no message does.
    # A marker whose job finished (its mark failed, the job ran anyway) is only dropped.
    finished = await post_job(client, auth)
    await wait_for_status(client, auth, finished["id"], "succeeded")
    with psycopg.connect(db_dsn(settings)) as conn:
        conn.execute(
            "UPDATE jobs SET status = 'queued', scheduled_for = NULL, created_at = now() - interval '5 minutes'"
            " WHERE id = %s",
            (job["id"],),
        )
        conn.execute(
            "INSERT INTO jobs_unenqueued (id, created_at) VALUES (%s, now() - interval '5 minutes'),"
            " (%s, now() - interval '5 minutes')",
            (job["id"], finished["id"]),
        )
    intake = client.server.app[ctx.INTAKE]
    moved = await requeue_stranded_jobs(intake.engine, intake.client, older_than_s=60, default_max_age_ms=60_000)
    assert moved >= 1
    await wait_for_status(client, auth, job["id"], "succeeded")
    assert handed_to_broker(settings, job["id"]) and handed_to_broker(settings, finished["id"])
    assert (await get_job(client, auth, finished["id"]))["status"] == "succeeded"
