"""An APScheduler executor that tells each run the slot it is for.

APScheduler 3 calls a job's function without its scheduled time, but a run's identity (its
idempotency key) is that time. This executor passes it as ``fire_at``: the latest due slot, since
every scheduler job coalesces (runs once for all the slots it missed).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor


class SlotExecutor(BaseExecutor):  # type: ignore[misc]
    def __init__(self, max_workers: int = 4) -> None:
        super().__init__()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="satworks-slot")

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        future = self._pool.submit(job.func, *job.args, fire_at=run_times[-1], **job.kwargs)

        def done(f: Future[Any]) -> None:
            exc = f.exception()
            if exc is None:
                self._run_job_success(job.id, [])
            else:
                self._run_job_error(job.id, exc, exc.__traceback__)

        future.add_done_callback(done)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait)
