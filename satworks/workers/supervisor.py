"""Restart a Dramatiq worker pool that exits unexpectedly.

Dramatiq stops a whole pool when one worker process dies (a segfault, an OOM kill, a job that kills
its worker) and leaves restarting to a supervisor. Under honcho that would stop every process of
the Procfile, so ``satworks worker --supervise`` is that supervisor: it restarts the pool with a
backoff of 1 s doubling to 30 s (reset after a minute of good running) and forwards SIGTERM/SIGINT.
In production, systemd or Kubernetes can do the same job instead.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from types import FrameType

log = logging.getLogger(__name__)
HEALTHY_AFTER_S = 60.0
MAX_BACKOFF_S = 30.0


def supervise(argv: list[str]) -> int:
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    backoff = 1.0
    while True:
        started = time.monotonic()
        # Its own session: a signal to our process group (honcho's Ctrl-C, systemd) reaches Dramatiq once,
        # forwarded by us; twice would make Dramatiq kill its workers mid-job.
        child = subprocess.Popen(argv, start_new_session=True)
        code = child.wait()
        if stop.is_set():
            return code
        if time.monotonic() - started > HEALTHY_AFTER_S:
            backoff = 1.0
        log.error(
            "worker pool exited unexpectedly; restarting",
            extra={"action": "pool_restart", "exit_code": code, "backoff_s": backoff},
        )
        if stop.wait(backoff):
            return code
        backoff = min(MAX_BACKOFF_S, backoff * 2)
