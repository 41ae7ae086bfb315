"""A stop signal that reaches a worker process twice at once is one request to stop.

Dramatiq's worker process reads a first SIGTERM (or SIGHUP) as "stop: finish the running jobs, give
back the held messages" and a second as "kill now" (``sys.exit`` in the main thread, the worker never
stopped). A signal to the pool's whole process group (honcho stopping, systemd's default
``KillMode=control-group``, a terminal hanging up) reaches each worker process twice within
milliseconds: directly, and from Dramatiq's main process, which passes every signal on. Read as two,
the main thread exited without stopping the worker: its threads went on taking messages, and the pool
never exited until it was killed, which cuts off whatever runs then and counts a crash.

So a repeat of the same signal within ``REPEAT_WINDOW_S`` of the first is dropped; a later one still
means "kill now", as an operator sending it again expects.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

REPEAT_WINDOW_S = 2.0
"""How long after a stop signal the same signal again is taken as its copy. Both copies leave
within a millisecond of each other; the window covers a loaded machine's scheduling delay."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], Any]


def is_dramatiq_worker_handler(handler: object) -> bool:
    """Whether ``handler`` is the one Dramatiq's ``worker_process`` installs (its internal closure)."""
    qualname: str = getattr(handler, "__qualname__", "")
    return getattr(handler, "__module__", None) == "dramatiq.cli" and qualname.startswith("worker_process.")


def coalesce_repeats(handler: Handler, window_s: float = REPEAT_WINDOW_S) -> Handler:
    """``handler``, skipping a call with the same signal number within ``window_s`` of the last call passed on."""
    passed: dict[int, float] = {}

    def coalesced(signum: int, frame: FrameType | None) -> Any:
        now = time.monotonic()
        last = passed.get(signum)
        if last is not None and now - last < window_s:
            return None
        passed[signum] = now
        return handler(signum, frame)

    coalesced.__wrapped__ = handler  # type: ignore[attr-defined]
    return coalesced


def coalesce_stop_signals(window_s: float = REPEAT_WINDOW_S) -> bool:
    """In a Dramatiq worker process's main thread, wrap its stop handlers with ``coalesce_repeats``.
    Returns whether it did (elsewhere, e.g. a test importing the worker module, it leaves handlers alone)."""
    done = False
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if callable(current) and is_dramatiq_worker_handler(current):
            signal.signal(signum, coalesce_repeats(current, window_s))
            done = True
    return done
