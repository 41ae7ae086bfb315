"""Workers killed with SIGKILL lose nothing; a job that kills every worker is dead-lettered.

These tests run their own worker pools under their own queue prefix, so killing them disturbs no
other test. The Redis broker's heartbeat timeout is 3 s here (15 s by default), with the reaper
checking every 0.5 s, so recovery is measured in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.jobs_helpers import post_job, wait_for_status
from tests.support import WorkerProcess, eventually, free_port

pytestmark = pytest.mark.acceptance


@pytest.fixture
def isolated(base_settings: Settings) -> Settings:
    return base_settings.model_copy(
        update={
            "queue_prefix": f"k{uuid.uuid4().hex[:8]}_",
            "max_crashes": 2,
            "worker_metrics_port": free_port(),
        }
    )


@pytest.fixture
def pools() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for pool in started:
        pool.kill()


async def test_job_of_a_killed_worker_finishes_on_the_next_one(
    aiohttp_client: Any, isolated: Settings, pools: list[WorkerProcess], auth: Any
) -> None:
    client = await aiohttp_client(create_app(isolated))
    first = WorkerProcess(isolated).start()
    pools.append(first)
    job = await post_job(client, auth, payload={"sleep_ms": 60_000, "fail_attempts": 1})
    await wait_for_status(client, auth, job["id"], "running")
    first.kill()
    killed_at = time.monotonic()
    # The second run of this canary sleeps as well; it must be handed to the new worker and start again.
    second = WorkerProcess(isolated).start()
    pools.append(second)

    async def restarted() -> dict[str, Any] | None:
        document = await (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json()
        return document if document["attempts"] == 2 and document["status"] == "running" else None

    await eventually(restarted, timeout_s=30, what="the job to be redelivered to the new worker")
    print(f"redelivered {time.monotonic() - killed_at:.1f}s after SIGKILL")


async def test_killed_worker_short_job_completes_with_one_crash_counted(
    aiohttp_client: Any, isolated: Settings, pools: list[WorkerProcess], auth: Any, settings: Any
) -> None:
    from tests.support import job_row

    client = await aiohttp_client(create_app(isolated))
    first = WorkerProcess(isolated).start()
    pools.append(first)
    job = await post_job(client, auth, payload={"sleep_ms": 1_500})
    await wait_for_status(client, auth, job["id"], "running")
    first.kill()
    pools.append(WorkerProcess(isolated).start())
    done = await wait_for_status(client, auth, job["id"], "succeeded", timeout_s=30)
    assert done["attempts"] == 2
    assert job_row(settings, job["id"])["crashes"] == 1  # type: ignore[index]


async def test_job_that_kills_its_worker_every_time_is_dead_lettered(
    aiohttp_client: Any, isolated: Settings, pools: list[WorkerProcess], auth: Any
) -> None:
    client = await aiohttp_client(create_app(isolated))
    job = await post_job(client, auth, payload={"crash": True})

    async def dead_after_restarts() -> dict[str, Any] | None:
        if not any(pool.alive() for pool in pools):  # a supervisor's job: start a fresh pool
            pools.append(WorkerProcess(isolated).start())
        document = await (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json()
        return document if document["status"] == "dead" else None

    dead = await eventually(dead_after_restarts, timeout_s=45, what="the crash-looping job to be dead-lettered")
    assert dead["error"]["type"] == "WorkerCrashed"
    assert dead["attempts"] == 3  # two runs crashed; the third delivery was refused


async def test_supervised_pool_comes_back_after_a_worker_dies_and_finishes_the_job(
    aiohttp_client: Any, isolated: Settings, pools: list[WorkerProcess], auth: Any
) -> None:
    client = await aiohttp_client(create_app(isolated))
    pools.append(WorkerProcess(isolated, supervise=True).start())
    job = await post_job(client, auth, payload={"crash": True, "fail_attempts": 1})  # kills its worker once
    done = await wait_for_status(client, auth, job["id"], "succeeded", timeout_s=40)
    assert done["attempts"] == 2
    assert pools[0].alive()  # the supervisor itself never exited


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_a_pool_killed_at_its_root_leaves_no_orphans_and_lets_the_next_one_serve_metrics(
    isolated: Settings, pools: list[WorkerProcess]
) -> None:
    """The metrics process is a fork of the pool's Dramatiq process: orphaned, it must not keep the port
    (the pool started in its place would refuse to start)."""
    port = isolated.worker_metrics_port
    first = WorkerProcess(isolated).start()
    pools.append(first)

    async def serving() -> bool:
        return _listening(port)

    async def let_go() -> bool:
        return not _listening(port)

    async def orphans_gone() -> bool:
        return subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True).returncode == 1

    await eventually(serving, what="the first pool's metrics")
    assert first.proc is not None
    pgid = first.proc.pid  # the pool's session: the Dramatiq process and its forks
    os.kill(pgid, signal.SIGKILL)  # the Dramatiq process alone: its forks are orphaned
    first.proc.wait(timeout=10)
    try:
        await eventually(let_go, timeout_s=10, what="the orphaned metrics process to let go of the port")
        # The orphaned worker processes stop too: left running, they would take jobs outside any pool.
        await eventually(orphans_gone, timeout_s=30, what="the orphaned worker processes to stop")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    second = WorkerProcess(isolated).start()
    pools.append(second)
    await eventually(serving, what="the second pool's metrics")
    assert second.alive()


async def test_job_waiting_past_its_max_age_is_dead_with_its_row_updated(
    aiohttp_client: Any, isolated: Settings, pools: list[WorkerProcess], auth: Any
) -> None:
    aged = isolated.model_copy(update={"default_max_age_ms": 2_000})
    client = await aiohttp_client(create_app(aged))
    stale = await post_job(client, auth)
    created = time.monotonic()

    async def older_than_max_age() -> bool:
        return time.monotonic() > created + 2.5

    await eventually(older_than_max_age, what="the queued job to outlive its max age")
    pools.append(WorkerProcess(aged).start())
    dead = await wait_for_status(client, auth, stale["id"], "dead", timeout_s=30)
    assert (dead["error"]["type"], dead["attempts"]) == ("AgeLimitExceeded", 0)
    # A delayed job's age counts from when it is due, not from when it was accepted: due in 8 s with a
    # 6 s max age, it runs (the worker is up: it has just dead-lettered the stale job). The 6 s are
    # the worker's room to fetch it once due, on a loaded machine; counted from acceptance it would be dead.
    later = await aiohttp_client(create_app(isolated.model_copy(update={"default_max_age_ms": 6_000})))
    delayed = await post_job(later, auth, delay_seconds=8)
    done = await wait_for_status(later, auth, delayed["id"], "succeeded", "dead", timeout_s=40)
    assert (done["status"], done["attempts"]) == ("succeeded", 1), done


@pytest.fixture
def claims_ahead(isolated: Settings) -> Settings:
    """``isolated``, claiming ahead behind jobs of any length (by default only behind jobs of 20 ms or less)."""
    return isolated.model_copy(update={"claim_ahead_max_run_ms": 600_000})


async def _claimed_behind_busy_threads(client: Any, auth: Any, settings: Settings) -> tuple[list[str], str]:
    """On a pool of 2 threads: two 8 s jobs running, and the id of a job claimed ahead behind them.

    A 1 s job and an 8 s one start; an 8 s job and a quick one wait for a thread. The 1 s job's outcome
    is committed with claims of both waiting jobs; the first takes the free thread, the quick one waits.
    The test then has about 6 s to act before a thread is free again."""
    from tests.support import eventually, job_row

    first = await post_job(client, auth, payload={"sleep_ms": 1_000})
    running = [(await post_job(client, auth, payload={"sleep_ms": 8_000}))["id"]]
    for job in (first["id"], running[0]):
        await wait_for_status(client, auth, job, "running")
    running.append((await post_job(client, auth, payload={"sleep_ms": 8_000}))["id"])
    waiting = (await post_job(client, auth))["id"]

    async def claimed_ahead() -> bool:
        rows = [job_row(settings, job_id) for job_id in (*running, waiting)]
        states = [(row["status"], row["attempts"], row["started_attempt"]) for row in rows if row is not None]
        return states == [("running", 1, 1), ("running", 1, 1), ("running", 1, 0)]  # the last: claimed, not started

    await eventually(claimed_ahead, timeout_s=20, what="the quick job to be claimed behind two running ones")
    return running, waiting


async def test_jobs_claimed_behind_busy_threads_of_a_killed_worker_count_no_crash(
    aiohttp_client: Any, claims_ahead: Settings, pools: list[WorkerProcess], auth: Any, settings: Any
) -> None:
    from tests.support import job_row

    client = await aiohttp_client(create_app(claims_ahead))
    pools.append(WorkerProcess(claims_ahead, queues="default", threads=2).start())
    running, waiting = await _claimed_behind_busy_threads(client, auth, settings)
    pools[0].kill()
    pools.append(WorkerProcess(claims_ahead, queues="default", threads=2).start())

    for job_id in (*running, waiting):
        await wait_for_status(client, auth, job_id, "succeeded", timeout_s=40)
    counts = [job_row(settings, job_id) for job_id in (*running, waiting)]
    assert [(row["attempts"], row["crashes"]) for row in counts if row is not None] == [(2, 1), (2, 1), (2, 0)]


async def test_a_stopping_worker_gives_back_the_claims_of_jobs_it_never_started(
    aiohttp_client: Any, claims_ahead: Settings, pools: list[WorkerProcess], auth: Any, settings: Any
) -> None:
    from tests.support import job_row

    client = await aiohttp_client(create_app(claims_ahead))
    # Supervised, as in the Procfile: a SIGTERM to the process group reaches Dramatiq once.
    pools.append(WorkerProcess(claims_ahead, queues="default", threads=2, supervise=True).start())
    running, waiting = await _claimed_behind_busy_threads(client, auth, settings)
    pools[0].stop()  # SIGTERM: the running jobs finish first

    for job_id in running:
        assert (await wait_for_status(client, auth, job_id, "succeeded"))["attempts"] == 1
    back = job_row(settings, waiting)
    assert back is not None and (back["status"], back["attempts"], back["started_at"]) == ("queued", 0, None)
    pools.append(WorkerProcess(claims_ahead, queues="default", threads=2).start())
    done = await wait_for_status(client, auth, waiting, "succeeded", timeout_s=30)
    assert done["attempts"] == 1
    assert job_row(settings, waiting)["crashes"] == 0  # type: ignore[index]


async def test_a_sigterm_to_the_whole_process_group_stops_the_pool_gracefully(
    aiohttp_client: Any, isolated: Settings, pools: list[WorkerProcess], auth: Any, settings: Any, tmp_path: Any
) -> None:
    """Unsupervised, each worker process gets the SIGTERM twice: from the group and from Dramatiq's
    main process passing it on. Together they are one request to stop, not "stop, then kill now"."""
    from tests.support import job_row

    client = await aiohttp_client(create_app(isolated))
    log = tmp_path / "pool.log"
    pool = WorkerProcess(isolated, queues="default", threads=1, log=log).start()
    pools.append(pool)
    running = await post_job(client, auth, payload={"sleep_ms": 3_000})
    await wait_for_status(client, auth, running["id"], "running")
    waiting = await post_job(client, auth)
    assert pool.proc is not None
    os.killpg(pool.proc.pid, signal.SIGTERM)  # as honcho's stop and systemd's KillMode=control-group do

    assert pool.proc.wait(timeout=30) == 0
    assert "Killing worker process" not in log.read_text()
    ran = job_row(settings, running["id"])
    assert ran is not None and (ran["status"], ran["attempts"], ran["crashes"]) == ("succeeded", 1, 0)
    left = job_row(settings, waiting["id"])
    assert left is not None and (left["status"], left["attempts"]) == ("queued", 0)
