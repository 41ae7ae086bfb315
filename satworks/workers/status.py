"""Group commit for job state moves: one statement per batch, shared by every thread of a worker process.

Each worker thread hands its claim or outcome to the writer and waits for the commit, so no message
is acknowledged before its outcome is durable, yet N concurrent threads cost one round trip, not N.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from satworks.db import jobs as q
from satworks.db.engine import db_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    job_type: str
    payload: dict[str, Any]
    attempts: int
    crashes: int
    previous: str


@dataclass(frozen=True)
class Outcome:
    job_id: uuid.UUID
    status: str
    result: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    next_retry_at: datetime | None = None
    finished_at: datetime | None = None


_STOP = object()


class StatusWriter:
    def __init__(self, engine: Engine, *, batch_max: int) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._wait_s = 60.0  # a write never blocks a worker thread forever (writer stopped or wedged)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="satworks-status-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._inbox.put(_STOP)
        self._thread.join(timeout=10)

    def claim(self, job_id: uuid.UUID) -> Claim | None:
        """Mark the job running; ``None`` when it must not run (cancelled, finished, unknown)."""
        future: Future[Claim | None] = Future()
        self._inbox.put(("claim", job_id, future))
        return future.result(timeout=self._wait_s)

    def record(self, outcome: Outcome) -> None:
        """Write a run's outcome for a job that is running."""
        future: Future[None] = Future()
        self._inbox.put(("record", outcome, future))
        future.result(timeout=self._wait_s)

    def kill(self, outcome: Outcome) -> None:
        """Dead-letter a job that never got to run (age limit): any unfinished state."""
        future: Future[None] = Future()
        self._inbox.put(("kill", outcome, future))
        future.result(timeout=self._wait_s)

    def _loop(self) -> None:
        while True:
            first = self._inbox.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._inbox.put(_STOP)
                    break
                batch.append(item)
            self._flush(batch)

    def _flush(self, batch: list[Any]) -> None:
        claims = [(job_id, fut) for kind, job_id, fut in batch if kind == "claim"]
        records = [(outcome, fut) for kind, outcome, fut in batch if kind == "record"]
        kills = [(outcome, fut) for kind, outcome, fut in batch if kind == "kill"]
        try:
            with db_errors(), self._engine.begin() as conn:
                # Records first: an earlier attempt's outcome always precedes the claim of the next one.
                if records:
                    conn.execute(q.finish(), [_params(outcome) for outcome, _ in records])
                for outcome, _ in kills:
                    conn.execute(
                        q.kill(
                            outcome.job_id,
                            error_type=outcome.error_type or "Dead",
                            error_message=outcome.error_message or "",
                        )
                    )
                claimed: dict[uuid.UUID, Claim] = {}
                if claims:
                    rows = conn.execute(q.claim(sorted({job_id for job_id, _ in claims}))).all()
                    claimed = {
                        row.id: Claim(row.id, row.type, row.payload, row.attempts, row.crashes, row.previous)
                        for row in rows
                    }
        except Exception as exc:  # the writer's boundary: every waiting thread gets the error
            log.warning("status write failed", extra={"action": "status_write_failed", "n": len(batch)})
            for *_, fut in batch:
                fut.set_exception(exc)
            return
        for job_id, fut in claims:
            fut.set_result(claimed.pop(job_id, None))
        for _, fut in (*records, *kills):
            fut.set_result(None)


def _params(outcome: Outcome) -> dict[str, Any]:
    return {
        "b_id": outcome.job_id,
        "b_status": outcome.status,
        "b_result": outcome.result,
        "b_error_type": outcome.error_type,
        "b_error_message": outcome.error_message,
        "b_next_retry_at": outcome.next_retry_at,
        "b_finished_at": outcome.finished_at,
    }
