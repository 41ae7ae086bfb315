"""Group commit for job state moves: one statement per batch, shared by every thread of a worker process.

Each worker thread hands its claim or outcome to the writer and waits for the commit, so no message
is acknowledged before its outcome is durable, yet N concurrent threads cost one round trip, not N.
Claims made ahead (``reserve``), their starts and their release are written the same way.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from satworks.db import jobs as q
from satworks.db.engine import db_errors
from satworks.errors import DependencyUnavailable
from satworks.jobs.status import JobStatus
from satworks.workers.pending import Pending

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    job_type: str
    payload: dict[str, Any]
    attempts: int
    crashes: int
    unproven: bool = False  # an earlier attempt's worker died before its start was recorded (``CLAIM_BATCH``)


@dataclass(frozen=True)
class Outcome:
    job_id: uuid.UUID
    status: JobStatus
    result: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    next_retry_at: datetime | None = None
    finished_at: datetime | None = None


STOP = object()
"""Put on a writer thread's inbox to end the thread once everything put before it is done."""


def take_batch(
    inbox: queue.SimpleQueue[Any],
    first: Any,
    *,
    batch_max: int,
    until: float = 0.0,
    complete: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """``first`` and what else waits in ``inbox``, up to ``batch_max`` items; while there is nothing,
    wait for more until the monotonic time ``until``, unless ``complete(batch)`` says nothing more can
    come. A ``STOP`` ends the batch and stays on the inbox, for the thread's next read."""
    batch = [first]
    while len(batch) < batch_max:
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            left = until - time.monotonic()
            if left <= 0 or (complete is not None and complete(batch)):
                break
            try:
                item = inbox.get(timeout=left)
            except queue.Empty:
                break
        if item is STOP:
            inbox.put(STOP)
            break
        batch.append(item)
    return batch


class StatusWriter:
    """One thread per worker process that group-commits claims and outcomes.

    The writer keeps one connection of ``engine``'s pool checked out while it runs, in autocommit
    mode, and sends static SQL through psycopg: a batch whose outcomes and claims concern different
    jobs (the usual case) is one statement, so one round trip and one commit. When a job has both an
    outcome and a claim in the batch (its retry was picked up at once), or jobs are killed, the
    statements run one after the other, outcomes first, each committed before the next.
    """

    def __init__(self, engine: Engine, *, batch_max: int, gather_s: float = 0.0) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._gather_s = gather_s  # under load, how long a batch waits for more (see ``_collect``)
        self._last_size = 1
        self.claimers: int | None = None  # the worker threads that claim through this writer, once known
        # Claims to make ahead with each batch: (job id, generation, its future), each answered as a
        # ``reserve`` (``JobTracking`` hands over the jobs waiting for a worker thread).
        self.claim_ahead: Callable[[], list[tuple[uuid.UUID, int, Pending[Claim | None]]]] | None = None
        self._wait_s = 60.0  # a write never blocks a worker thread forever (writer stopped or wedged)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="satworks-status-writer", daemon=True)
        self._pooled: Any = None  # the pool's proxy of the connection the writer holds
        self._conn: psycopg.Connection[Any] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._inbox.put(STOP)
        self._thread.join(timeout=10)

    def claim(self, job_id: uuid.UUID, generation: int = 0) -> Claim | None:
        """Mark the job running, as it starts; ``None`` when it must not run (cancelled, finished,
        unknown, or its ``generation`` is not the message's: the reconciler replaced that message)."""
        future: Pending[Claim | None] = Pending()
        self._inbox.put(_claim_item(job_id, generation, future, starting=True))
        return future.result(timeout=self._wait_s)

    def reserve(self, job_id: uuid.UUID, generation: int = 0) -> Pending[Claim | None]:
        """``claim`` ahead, without waiting, for a job that will start later: ``started`` records its
        start, or ``release`` gives the claim back if it never does."""
        future: Pending[Claim | None] = Pending()
        self._inbox.put(_claim_item(job_id, generation, future, starting=False))
        return future

    def started(self, job_id: uuid.UUID, attempts: int) -> Pending[None]:
        """Record that the reserved attempt ``attempts`` of the job began (done once committed)."""
        future: Pending[None] = Pending()
        self._inbox.put(("start", (job_id, attempts), future))
        return future

    def record_start(self, job_id: uuid.UUID, attempts: int) -> None:
        """``started``, waiting for the commit."""
        self.started(job_id, attempts).result(timeout=self._wait_s)

    def release(self, held: list[tuple[uuid.UUID, int]]) -> None:
        """Give back reserved attempts ``(job_id, attempts)`` that never started: the jobs wait again."""
        futures: list[Pending[None]] = []
        for item in held:
            futures.append(Pending())
            self._inbox.put(("release", item, futures[-1]))
        for future in futures:
            future.result(timeout=self._wait_s)

    def record(self, outcome: Outcome) -> None:
        """Write a run's outcome for a job that is running."""
        self.submit(outcome).result(timeout=self._wait_s)

    def submit(self, outcome: Outcome) -> Pending[None]:
        """``record`` without waiting: the future is done once the outcome is committed (or failed)."""
        future: Pending[None] = Pending()
        self._inbox.put(("record", outcome, future))
        return future

    def kill(self, outcome: Outcome) -> None:
        """Dead-letter a job that never got to run (age limit): any unfinished state."""
        future: Pending[None] = Pending()
        self._inbox.put(("kill", outcome, future))
        future.result(timeout=self._wait_s)

    def _loop(self) -> None:
        try:
            while True:
                first = self._inbox.get()
                if first is STOP:
                    return
                batch = self._collect(first)
                self._last_size = len(batch)
                self._flush(batch + self._ahead())
        finally:
            self._release()

    def _collect(self, first: Any) -> list[Any]:
        """``first`` and what else is waiting, up to ``batch_max``. When the last batch held more than
        one write (the threads are busy), wait up to ``gather_s`` for more: a thread that is about to
        claim joins this commit instead of paying for one of its own (Postgres' ``commit_delay``, for
        one writer). After a lone write nothing waits, so an idle worker's claim is not delayed; nor
        does a batch that holds a claim of every worker thread (no other thread is left to claim)."""
        until = time.monotonic() + self._gather_s if self._last_size > 1 else 0.0
        claimers = self.claimers
        complete = None if claimers is None else (lambda batch: _claims(batch) >= claimers)
        return take_batch(self._inbox, first, batch_max=self._batch_max, until=until, complete=complete)

    def _ahead(self) -> list[Any]:
        if self.claim_ahead is None:
            return []
        try:
            return [_claim_item(job, generation, fut, starting=False) for job, generation, fut in self.claim_ahead()]
        except Exception:  # the writer's boundary: its thread must go on; the jobs are claimed as they start
            log.exception("claims ahead not made", extra={"action": "claim_ahead_failed"})
            return []

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            with db_errors():
                pooled = self._engine.raw_connection()  # the pool pings it first
            conn = pooled.driver_connection
            assert isinstance(conn, psycopg.Connection)
            conn.autocommit = True
            self._pooled, self._conn = pooled, conn
        return self._conn

    def _release(self, *, broken: bool = False) -> None:
        pooled, self._pooled, self._conn = self._pooled, None, None
        if pooled is None:
            return
        with contextlib.suppress(Exception):
            if broken:
                pooled.invalidate()  # closed, and never handed out again
            else:
                pooled.driver_connection.autocommit = False
            pooled.close()

    def _flush(self, batch: list[Any]) -> None:
        kinds: dict[str, list[Any]] = {"claim": [], "record": [], "kill": [], "start": [], "release": []}
        for kind, item, fut in batch:
            kinds[kind].append((item, fut))
        claims, records = kinds["claim"], kinds["record"]
        claimed: dict[tuple[uuid.UUID, int], Claim] = {}
        try:
            rows = self._write(claims, records, kinds["kill"], kinds["start"], kinds["release"])
            for row in rows:
                claimed[(row[0], row[6])] = Claim(*row[:6])
        except Exception as exc:  # the writer's boundary: every waiting thread gets the error
            if isinstance(exc, psycopg.DataError | psycopg.IntegrityError) and len(batch) > 1:
                # Something in one item (e.g. U+0000 in a result): write them one by one, so only that
                # item fails instead of every thread in the batch, retry after retry.
                for item in batch:
                    self._flush([item])
                return
            log.warning("status write failed", extra={"action": "status_write_failed", "n": len(batch)})
            self._release(broken=True)  # the next batch starts on a fresh (pinged) connection
            error = exc
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):  # database lost or refused
                error = DependencyUnavailable("database unavailable", details={"dependency": "postgres"})
                error.__cause__ = exc
            for *_, fut in batch:
                fut.set_exception(error)
            return
        for (job_id, generation, _), claim_fut in claims:
            claim_fut.set_result(claimed.pop((job_id, generation), None))
        for kind in ("record", "kill", "start", "release"):
            for _, fut in kinds[kind]:
                fut.set_result(None)

    def _write(
        self,
        claims: list[tuple[tuple[uuid.UUID, int, bool], Any]],
        records: list[tuple[Outcome, Any]],
        kills: list[tuple[Outcome, Any]],
        starts: list[tuple[tuple[uuid.UUID, int], Any]],
        releases: list[tuple[tuple[uuid.UUID, int], Any]],
    ) -> list[Any]:
        """Write the batch; returns the claimed rows."""
        conn = self._connection()
        # A second outcome for the same job in one batch could never apply (the first one leaves
        # "running"), so only the first is sent. An outcome also records the start: a start in the
        # same batch (a job that ran in less than a batch) is not sent.
        outcomes = {o.job_id: o for o, _ in reversed(records)}
        started = sorted({item for item, _ in starts if item[0] not in outcomes})
        triples = sorted({item for item, _ in claims})  # in id order: row locks taken in one order everywhere
        ids = [job_id for job_id, _, _ in triples]
        claim_params = (
            q.uuid_array(ids),
            q.int_array([generation for _, generation, _ in triples]),
            q.bool_array([starting for *_, starting in triples]),
        )
        claimed: list[Any] = []
        if not kills and not releases and not outcomes.keys() & set(ids):
            if outcomes and ids:
                claimed = conn.execute(q.FINISH_AND_CLAIM, (outcomes_json(outcomes), *claim_params)).fetchall()
            elif outcomes:
                conn.execute(q.FINISH_BATCH, (outcomes_json(outcomes),))
            elif ids:
                claimed = conn.execute(q.CLAIM_BATCH, claim_params).fetchall()
        else:
            # Outcomes first: an earlier attempt's outcome always precedes the claim of the next one.
            if outcomes:
                conn.execute(q.FINISH_BATCH, (outcomes_json(outcomes),))
            for outcome, _ in kills:
                error_type, error_message = outcome.error_type or "Dead", outcome.error_message or ""
                conn.execute(q.KILL, (error_type, error_message, outcome.job_id))
            if releases:
                held = sorted({item for item, _ in releases})
                conn.execute(q.RELEASE_BATCH, _attempt_params(held))
            if ids:
                claimed = conn.execute(q.CLAIM_BATCH, claim_params).fetchall()
        if started:
            conn.execute(q.START_BATCH, _attempt_params(started))
        return claimed


def _claim_item(job_id: uuid.UUID, generation: int, future: Pending[Claim | None], *, starting: bool) -> Any:
    """A claim as the writer's inbox and batches hold it (``starting``: see ``CLAIM_BATCH``)."""
    return ("claim", (job_id, generation, starting), future)


def _attempt_params(pairs: list[tuple[uuid.UUID, int]]) -> tuple[str, str]:
    """``START_BATCH`` / ``RELEASE_BATCH`` parameters for ``(job id, attempt)`` pairs."""
    return q.uuid_array([job_id for job_id, _ in pairs]), q.int_array([attempt for _, attempt in pairs])


def _claims(batch: list[Any]) -> int:
    return sum(1 for kind, _, _ in batch if kind == "claim")


def outcomes_json(outcomes: dict[uuid.UUID, Outcome]) -> str:
    """The outcomes as the one parameter of ``FINISH_BATCH`` / ``FINISH_AND_CLAIM``."""
    return q.rows_json(
        [
            {
                "id": o.job_id,
                "status": o.status,
                "result": o.result,
                "error_type": o.error_type,
                "error_message": o.error_message,
                "next_retry_at": o.next_retry_at,
                "finished_at": o.finished_at,
            }
            for o in outcomes.values()
        ]
    )
