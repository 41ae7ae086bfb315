"""The outbox's wake-up: a thread per worker process that LISTENs for committed app events and dispatches.

Postgres sends the ``satworks_app_events`` NOTIFY when a transaction that inserted app events commits
(a trigger, migration 0007), whoever wrote them: payment checks, the job status writer, draws,
reports. The thread drains what arrived and runs one dispatch for all of it; dispatches of all
processes take turns on an advisory lock, and one that finds nothing is a single cheap query. It
dispatches once when it (re)connects, for what was written while nobody listened. A notification
is only a wake-up: the scheduled sweep dispatches as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
import psycopg
from dramatiq.middleware import Middleware

from satworks.db.outbox import CHANNEL
from satworks.errors import SatworksError

log = logging.getLogger(__name__)


class OutboxListener(Middleware):
    def __init__(self, dsn: str, dispatch: Callable[[], object], *, retry_s: float = 2.0) -> None:
        self.dsn = dsn
        self.dispatch = dispatch
        self.retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._thread = threading.Thread(target=self._loop, name="satworks-outbox", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._dispatch()  # what was written while nobody listened
                    while not self._stop.is_set():
                        if any(True for _ in conn.notifies(timeout=1.0, stop_after=1)):
                            for _ in conn.notifies(timeout=0.0):  # the rest of what arrived: one dispatch
                                pass
                            self._dispatch()
            except psycopg.Error:
                log.warning("outbox listener lost its connection", extra={"action": "outbox_listen_failed"})
            except Exception:  # the thread's boundary: a bug must not end the wake-ups for good
                log.exception("outbox listener failed", extra={"action": "outbox_listen_failed"})
            self._stop.wait(self.retry_s)

    def _dispatch(self) -> None:
        try:
            self.dispatch()
        except SatworksError:  # the database or the broker is down: the next wake-up or the sweep retries
            log.warning("dispatch failed", extra={"action": "dispatch_failed"}, exc_info=True)
