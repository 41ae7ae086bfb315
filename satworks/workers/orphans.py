"""A worker process whose pool is gone stops itself.

The Dramatiq CLI forks the worker processes; if that process is killed (SIGKILL, the OOM killer), its
workers are orphaned and would go on taking jobs outside any pool: a restarted pool would run beside
them, and a deploy would leave them on the old code. Each worker process watches the process that
forked it and, once it is gone, stops as on SIGTERM: the jobs it is running finish (up to Dramatiq's
shutdown timeout) and the messages it holds go back to their queue.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

CHECK_S = 0.5
"""How often a worker process checks that the process that forked it still runs."""


class StopWhenOrphaned(Middleware):
    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        parent = os.getppid()
        threading.Thread(target=self._watch, args=(parent,), name="satworks-orphan-watch", daemon=True).start()

    @staticmethod
    def _watch(parent: int) -> None:
        while os.getppid() == parent:
            time.sleep(CHECK_S)
        log.warning("the worker pool's process is gone: stopping", extra={"action": "worker_orphaned"})
        os.kill(os.getpid(), signal.SIGTERM)  # Dramatiq's graceful stop of a worker process
