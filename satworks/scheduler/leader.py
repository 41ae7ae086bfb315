"""Leader election: a Postgres session-level advisory lock held on a connection of its own.

Postgres releases the lock when the session ends, which it does at once when the leader's process
dies (the kernel closes its socket) and, when the leader goes silent (host down, network cut,
process frozen), after ``idle_session_timeout``: the leader checks its connection every
``check_s``, so a live session is never idle that long. A standby retries every ``retry_s``.

The leader acts only under a lease: until ``lease_s`` after it *sent* its last successful check.
The server cannot end the session for silence before ``idle_timeout_s`` after it received that
check, and ``lease_s < idle_timeout_s``, so a leader cut off from Postgres stops acting before a
standby can get the lock. A session ended by other means (``pg_terminate_backend``, a server
restart) frees the lock at once; each run confirms the lock on the lock's connection just before it
submits, so only a run already submitting can overlap a new leader, and a slot submitted twice is
one job by its idempotency key.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import psycopg

from satworks.db.schedules import LEADER_LOCK
from satworks.errors import SatworksError

log = logging.getLogger(__name__)

_ACQUIRE = "SELECT pg_try_advisory_lock(%s, %s)"
_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
    " AND classid = %s AND objid = %s AND objsubid = 2)"
)


def lease_clock() -> float:
    """Seconds on a clock that keeps counting while the machine is suspended (Linux: CLOCK_BOOTTIME)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


@dataclass(frozen=True)
class LeaseTimings:
    check_s: float
    retry_s: float
    idle_timeout_s: float
    lease_s: float


class LeaderLock:
    """The advisory lock on a dedicated connection: never pooled, never recycled, autocommit."""

    def __init__(self, dsn: str, *, application_name: str, timings: LeaseTimings) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._timings = timings
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def try_acquire(self) -> bool:
        try:
            conn = self._connect()
            row = conn.execute(_ACQUIRE, LEADER_LOCK).fetchone()
        except psycopg.Error as exc:
            self._broken("acquire", exc)
            return False
        return bool(row and row[0])

    def still_held(self) -> bool:
        """A cheap query on the lock's own connection, bounded by short timeouts."""
        if self._conn is None:
            return False
        try:
            row = self._conn.execute(_HELD, LEADER_LOCK).fetchone()
        except psycopg.Error as exc:
            self._broken("check", exc)
            return False
        return bool(row and row[0])

    def backend_pid(self) -> int | None:
        return self._conn.info.backend_pid if self._conn is not None and not self._conn.closed else None

    def release(self) -> None:
        """Close the connection: the session ends and Postgres frees the lock."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):  # already broken: the session is gone, and the lock with it
                conn.close()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            t = self._timings
            check_ms = max(1, int(t.lease_s * 500))  # a check may take half the lease: a slow one is no loss
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                application_name=self._application_name,
                connect_timeout=max(2, math.ceil(t.retry_s)),
                # The client notices a dead path during a check (unacknowledged data, or no answer).
                tcp_user_timeout=check_ms,
                keepalives=1,
                keepalives_idle=1,
                keepalives_interval=1,
                keepalives_count=max(2, math.ceil(t.check_s)),
                # The server ends a silent session (freeing the lock) and a check that hangs.
                options=f"-c idle_session_timeout={int(t.idle_timeout_s * 1000)} -c statement_timeout={check_ms}",
            )
        return self._conn

    def _broken(self, what: str, exc: psycopg.Error) -> None:
        log.warning(
            "leader lock connection failed (%s): %s", what, type(exc).__name__, extra={"action": "leader_lock_error"}
        )
        self.release()


class Elector(threading.Thread):
    """Standby ↔ leader, in its own thread so no other database work can delay the checks.

    ``on_elected`` runs with the lock held and may raise ``SatworksError`` to give it back;
    ``on_deposed`` runs before the lock is released, so scheduling stops first.
    """

    def __init__(
        self,
        lock: LeaderLock,
        timings: LeaseTimings,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[str], None],
    ) -> None:
        super().__init__(name="satworks-leader", daemon=True)
        self._lock = lock
        self._timings = timings
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._stopping = threading.Event()
        self._leading = False
        self._lease_until = 0.0

    def is_leader(self) -> bool:
        """True while this process holds the lock and its lease has not run out."""
        return self._leading and lease_clock() < self._lease_until

    def confirm(self) -> bool:
        """``is_leader``, and the lock is still held by our session: asked of Postgres, just before acting."""
        return self.is_leader() and self._lock.still_held()

    def stop(self, timeout_s: float | None = None) -> None:
        self._stopping.set()
        self.join(timeout_s)

    def run(self) -> None:
        t = self._timings
        while not self._stopping.is_set():
            sent = lease_clock()
            if self._leading:
                if self._lock.still_held():
                    self._lease_until = sent + t.lease_s
                    wait = t.check_s
                else:  # back to standby, retrying like any standby (one that kept its lock wins)
                    self._depose("lost")
                    wait = t.retry_s
            elif self._lock.try_acquire():
                self._lease_until = sent + t.lease_s
                self._leading = True
                log.info("elected leader", extra={"action": "leader_elected", "backend_pid": self._lock.backend_pid()})
                try:
                    self._on_elected()
                except SatworksError as exc:
                    log.warning("could not start leading: %s", exc.message, extra={"action": "leader_start_failed"})
                    self._depose("start_failed")
                    wait = t.retry_s
                else:
                    wait = t.check_s
            else:
                wait = t.retry_s
            self._stopping.wait(wait)
        if self._leading:
            self._depose("shutdown")
        self._lock.release()

    def _depose(self, reason: str) -> None:
        self._lease_until = 0.0
        self._leading = False
        try:
            self._on_deposed(reason)
        finally:
            self._lock.release()
        log.warning("no longer leader (%s)", reason, extra={"action": "leader_deposed", "reason": reason})
