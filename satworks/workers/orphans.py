"""A pool's processes stop once the pool is gone.

The Dramatiq CLI forks the worker processes and the metrics process; if that process is killed
(SIGKILL, the OOM killer), they are orphaned. Orphaned workers would go on taking jobs outside any pool
(a restarted pool would run beside them, a deploy would leave them on the old code), and an orphaned
metrics process would keep the pool's port. Each watches the process that forked it: a worker process
then stops as on SIGTERM (the jobs it is running finish, up to Dramatiq's shutdown timeout, and the
messages it holds go back to their queue); the metrics process returns (``serve_worker_metrics``).
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
"""How often a process checks that the process that forked it still runs."""


def wait_until_orphaned(parent: int) -> None:
    """Return once ``parent`` (the process that forked this one, ``os.getppid()`` at start) is gone."""
    while os.getppid() == parent:
        time.sleep(CHECK_S)


class StopWhenOrphaned(Middleware):
    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        parent = os.getppid()
        threading.Thread(target=self._watch, args=(parent,), name="satworks-orphan-watch", daemon=True).start()

    @staticmethod
    def _watch(parent: int) -> None:
        wait_until_orphaned(parent)
        log.warning("the worker pool's process is gone: stopping", extra={"action": "worker_orphaned"})
        os.kill(os.getpid(), signal.SIGTERM)  # Dramatiq's graceful stop of a worker process
