"""``SIGHUP`` reloads a pool: Dramatiq's CLI runs inside ``satworks worker`` and, on ``SIGHUP``, stops
its worker processes and execs itself again with the same arguments (same PID, new workers)."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.jobs_helpers import post_job, wait_for_status
from tests.support import WorkerProcess, free_port, live_children, wait_until


def is_dramatiq(pid: int) -> bool:
    return b"satworks.workers.main" in Path(f"/proc/{pid}/cmdline").read_bytes()


async def test_sighup_replaces_the_worker_processes_and_the_pool_goes_on_running_jobs(
    aiohttp_client: Any, base_settings: Settings, auth: Any
) -> None:
    settings = base_settings.model_copy(
        update={
            "queue_prefix": f"{base_settings.queue_prefix}h{uuid.uuid4().hex[:6]}_",
            "worker_metrics_port": free_port(),
        }
    )
    worker = WorkerProcess(settings, queues="default").start()
    assert worker.proc is not None
    pid = worker.proc.pid
    try:
        client = await aiohttp_client(create_app(settings))
        before = await post_job(client, auth)
        await wait_for_status(client, auth, before["id"], "succeeded", timeout_s=60)
        first = wait_until(lambda: live_children(pid) or None, what="the pool's processes")
        assert not is_dramatiq(pid)  # Dramatiq's CLI runs inside `satworks worker`, not exec'd

        worker.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: is_dramatiq(pid) and not live_children(pid) & first and bool(live_children(pid)),
            timeout_s=30,
            what="the old processes gone and new ones started",
        )

        assert worker.alive()
        after = await post_job(client, auth)
        await wait_for_status(client, auth, after["id"], "succeeded", timeout_s=60)
    finally:
        worker.stop()
