"""The reconciler, one run at a time in the test process, against this process's database and queues.

Messages are lost the way a broker loses them (the job's entry deleted from this test run's own
Redis hashes) and rows are aged with SQL, so no run has to wait for real time to pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from aiohttp.test_utils import TestClient

from satworks.settings import Settings
from satworks.workers.reconciler import reconcile
from tests.integration.jobs_helpers import post_job, wait_for_status
from tests.platform_support import repairs, worker_resources
from tests.support import WorkerProcess, db_dsn, eventually, handed_to_broker, job_row, message_in_broker


def drop_messages(settings: Settings, job_id: str) -> int:
    """Delete the job's messages (ready or delayed) from this run's queues; returns how many."""
    client = redis.Redis.from_url(settings.effective_broker_url)
    dropped = 0
    try:
        for queue in ("critical", "default", "bulk"):
            for suffix in (".msgs", ".DQ.msgs"):
                key = f"satworks:{settings.queue_prefix}{queue}{suffix}"
                for message_id, body in client.hgetall(key).items():
                    if job_id.encode() in body:
                        dropped += client.hdel(key, message_id)
    finally:
        client.close()
    return dropped


def execute(settings: Settings, sql: str, *params: Any) -> None:
    with psycopg.connect(db_dsn(settings)) as conn:
        conn.execute(sql, params)


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def test_a_waiting_job_whose_message_was_lost_runs_once_and_a_fresh_one_is_left_alone(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings, worker: WorkerProcess
) -> None:
    lost = await post_job(client, auth, run_at=later())
    fresh = await post_job(client, auth, run_at=later())
    for job in (lost, fresh):
        assert drop_messages(settings, job["id"]) == 1

        # The intake records the hand-off to the broker (deletes the job's ``jobs_unenqueued`` marker) just
        # after answering; until then the job is the stranded sweep's, not the reconciler's.
        # (Polled without blocking: the web app and its bookkeeping run on this test's event loop.)
        async def recorded(job: dict[str, Any] = job) -> bool:
            return handed_to_broker(settings, job["id"])

        await eventually(recorded, what="the hand-off recorded")
    # ``lost`` became due long ago; ``fresh`` just now (its message may be on its way: not "missing").
    execute(settings, "UPDATE jobs SET scheduled_for = now() - interval '10 minutes' WHERE id = %s", lost["id"])
    execute(settings, "UPDATE jobs SET scheduled_for = now() WHERE id = %s", fresh["id"])

    with worker_resources(settings) as res:
        result = reconcile(res)
        assert result["requeued"] >= 1 and repairs(res, "requeued") == result["requeued"]

    done = await wait_for_status(client, auth, lost["id"], "succeeded")
    assert done["attempts"] == 1
    assert job_row(settings, lost["id"])["generation"] == 1  # type: ignore[index]
    untouched = job_row(settings, fresh["id"])
    assert untouched is not None and (untouched["status"], untouched["generation"]) == ("scheduled", 0)
    assert not message_in_broker(settings, fresh["id"])


async def test_a_job_running_past_its_time_limit_with_no_message_is_settled_dead_and_never_rerun(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings, worker: WorkerProcess
) -> None:
    outcome_lost = await post_job(client, auth, run_at=later())
    still_held = await post_job(client, auth, run_at=later())
    finished = await post_job(client, auth)
    await wait_for_status(client, auth, finished["id"], "succeeded")
    # outcome_lost: a worker claimed it two hours ago and its outcome never reached Postgres (its
    # message was acknowledged). still_held: same age, but a message of it is still in the broker
    # (a worker's crash handed it back): the claim it leads to settles the job, not the reconciler.
    assert drop_messages(settings, outcome_lost["id"]) == 1
    for job in (outcome_lost, still_held):
        execute(
            settings,
            "UPDATE jobs SET status = 'running', attempts = 1, started_at = now() - interval '2 hours',"
            " claimed_at = now() - interval '2 hours' WHERE id = %s",
            job["id"],
        )
    execute(settings, "UPDATE jobs SET claimed_at = now() - interval '2 hours' WHERE id = %s", finished["id"])

    with worker_resources(settings) as res:
        first = reconcile(res)
        second = reconcile(res)
        assert first["outcome_lost"] >= 1 and repairs(res, "outcome_lost") == first["outcome_lost"]
        assert second["outcome_lost"] == 0

    settled = job_row(settings, outcome_lost["id"])
    assert settled is not None
    assert (settled["status"], settled["error_type"], settled["attempts"]) == ("dead", "OutcomeLost", 1)
    held = job_row(settings, still_held["id"])
    assert held is not None and held["status"] == "running"
    kept = job_row(settings, finished["id"])
    assert kept is not None and (kept["status"], kept["attempts"]) == ("succeeded", 1)
