"""Restart a Dramatiq worker pool that exits unexpectedly.

Dramatiq stops a whole pool when one worker process dies (a segfault, an OOM kill, a job that kills
its worker) and leaves restarting to a supervisor. Under honcho that would stop every process of
the Procfile, so ``satworks worker --supervise`` is that supervisor: it restarts the pool with a
backoff of 1 s doubling to 30 s (reset after a minute of good running) and forwards SIGTERM/SIGINT.
In production, systemd or Kubernetes can do the same job instead.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import threading
import time
from types import FrameType

log = logging.getLogger(__name__)
HEALTHY_AFTER_S = 60.0
MAX_BACKOFF_S = 30.0
PR_SET_PDEATHSIG = 1


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
        # And it dies with us (Linux PR_SET_PDEATHSIG): a SIGKILLed supervisor leaves no orphan pool.
        child = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent)
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


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the supervisor exits (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: nothing to ask for
        pass
