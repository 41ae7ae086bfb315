"""Group commit for the intake: concurrent ``POST /v1/jobs`` share one INSERT and one broker pipeline.

A request's job is answered only after its row is committed and its message is in the broker. While
one batch is being written the next one gathers, so batches grow with load and cost nothing idle.
If the broker refuses a batch, its rows are deleted again and the callers get 503: nothing is left
half-done. If the process dies between commit and enqueue, ``requeue_stranded`` hands the committed
jobs to the broker later (their rows keep ``enqueued = 0`` until then).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.db import jobs as q
from satworks.db import payments as payments_db
from satworks.db.engine import db_errors
from satworks.errors import Conflict, DependencyUnavailable
from satworks.jobs.catalog import max_age_ms
from satworks.jobs.payments import CREATE_ADDRESS, payment_message
from satworks.workers.broker import Delayed, enqueue_many, job_message

log = logging.getLogger(__name__)


@dataclass
class Submission:
    row: dict[str, Any]
    delay_ms: int | None
    future: asyncio.Future[tuple[dict[str, Any], bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IntakeBatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        broker: dramatiq.Broker,
        executor: Executor,
        *,
        batch_max: int,
        default_max_age_ms: int,
        on_enqueued: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self._default_max_age_ms = default_max_age_ms
        self._engine = engine
        self._broker = broker
        self._executor = executor
        self._batch_max = batch_max
        self._on_enqueued = on_enqueued
        self._pending: list[Submission] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def submit(self, row: dict[str, Any], delay_ms: int | None) -> tuple[dict[str, Any], bool]:
        """Record and enqueue one job; returns ``(row, replayed)``. ``replayed``: an earlier job with
        the same idempotency key. Raises ``Conflict`` when that key came with a different body."""
        submission = Submission(row, delay_ms)
        self._pending.append(submission)
        self._wakeup.set()
        return await submission.future

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="intake-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, *self._background, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._batch_max], self._pending[self._batch_max :]
                try:
                    await self._flush(batch)
                except Exception as exc:  # the batch's boundary: every waiting request gets the error
                    if not isinstance(exc, DependencyUnavailable):
                        log.exception("intake batch failed", extra={"action": "intake_failed"})
                    for sub in batch:
                        if not sub.future.done():
                            sub.future.set_exception(exc)

    async def _flush(self, batch: list[Submission]) -> None:
        # Within one batch, a repeated (app, key) waits for the first occurrence's outcome.
        firsts: dict[tuple[uuid.UUID, str], Submission] = {}
        unique: list[Submission] = []
        repeats: list[tuple[Submission, Submission]] = []
        for sub in batch:
            ident = (sub.row["app_id"], sub.row["idempotency_key"])
            if ident[1] is not None and ident in firsts:
                repeats.append((sub, firsts[ident]))
                continue
            if ident[1] is not None:
                firsts[ident] = sub
            unique.append(sub)

        with db_errors():
            async with self._engine.begin() as conn:
                inserted = {r.id: r.seq for r in await conn.execute(q.insert_many(), [s.row for s in unique])}
                skipped = [s for s in unique if s.row["id"] not in inserted]
                existing: dict[tuple[uuid.UUID, str], Any] = {}
                if skipped:
                    pairs = [(s.row["app_id"], s.row["idempotency_key"]) for s in skipped]
                    rows = await conn.execute(q.by_idempotency_keys(pairs))
                    existing = {(r.app_id, r.idempotency_key): r for r in rows}

        fresh = [s for s in unique if s.row["id"] in inserted]
        if fresh:
            await self._enqueue(fresh)
        for sub in fresh:
            sub.future.set_result(({**sub.row, "seq": inserted[sub.row["id"]]}, False))
        for sub in skipped:
            self._answer_replay(sub, existing.get((sub.row["app_id"], sub.row["idempotency_key"])))
        for sub, first in repeats:
            if first.future.exception() is not None:
                sub.future.set_exception(first.future.exception())  # type: ignore[arg-type]
            else:
                self._answer_replay(sub, first.future.result()[0])
        if fresh:
            task = asyncio.create_task(self._mark_enqueued([s.row["id"] for s in fresh]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _answer_replay(self, sub: Submission, row: Any) -> None:
        if row is None:  # the conflicting row vanished (its own batch was rolled back): try again
            sub.future.set_exception(DependencyUnavailable("concurrent request failed, retry"))
            return
        data = dict(row._mapping) if hasattr(row, "_mapping") else row
        if data["request_hash"] != sub.row["request_hash"]:
            sub.future.set_exception(
                Conflict(
                    "idempotency key already used with a different request",
                    details={"job_id": str(data["id"])},
                )
            )
        else:
            sub.future.set_result((data, True))

    async def _enqueue(self, fresh: list[Submission]) -> None:
        items: list[Delayed] = [(self._message(s.row, s.delay_ms), s.delay_ms) for s in fresh]
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, enqueue_many, self._broker, items)
        except Exception as exc:  # any broker failure: undo the rows, answer 503
            log.warning("broker refused a batch; rolling it back", extra={"action": "enqueue_failed"})
            with db_errors():
                async with self._engine.begin() as conn:
                    await conn.execute(q.delete_unenqueued([s.row["id"] for s in fresh]))
            raise DependencyUnavailable("broker unavailable", details={"dependency": "broker"}) from exc
        self._on_enqueued([s.row for s in fresh])

    def _message(self, row: dict[str, Any], delay_ms: int | None) -> dramatiq.Message[Any]:
        age = max_age_ms(row["type"], self._default_max_age_ms)
        return job_message(row["id"], row["type"], row["queue"], row["max_retries"], delay_ms=delay_ms, max_age_ms=age)

    async def _mark_enqueued(self, ids: list[uuid.UUID]) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(q.mark_enqueued(ids))
        except Exception:  # background bookkeeping; requeue_stranded may enqueue them again (harmless)
            log.warning("could not mark jobs enqueued", extra={"action": "mark_enqueued_failed"})


async def requeue_stranded(
    engine: AsyncEngine,
    broker: dramatiq.Broker,
    executor: Executor,
    *,
    older_than_s: float,
    default_max_age_ms: int,
    limit: int = 500,
) -> int:
    """Hand committed-but-never-enqueued jobs to the broker. Safe in many processes (SKIP LOCKED);
    a duplicate message is harmless because workers claim jobs with a conditional update."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    with db_errors():
        async with engine.begin() as conn:
            rows = (await conn.execute(q.stranded(cutoff, limit))).all()
            if not rows:
                return 0
            now = datetime.now(UTC)
            items: list[Delayed] = []
            for r in rows:
                delay = max(0, int((r.scheduled_for - now).total_seconds() * 1000)) if r.scheduled_for else None
                age = max_age_ms(r.type, default_max_age_ms)
                items.append((job_message(r.id, r.type, r.queue, r.max_retries, delay_ms=delay, max_age_ms=age), delay))
            await asyncio.get_running_loop().run_in_executor(executor, enqueue_many, broker, items)
            await conn.execute(q.mark_enqueued([r.id for r in rows]))
    log.warning("requeued stranded jobs", extra={"action": "stranded_requeued", "count": len(rows)})
    return len(rows)


async def requeue_stranded_payments(
    engine: AsyncEngine, broker: dramatiq.Broker, executor: Executor, *, older_than_s: float, prefix: str
) -> int:
    """Re-send the address job of requests stuck in ``creating`` (it is idempotent: a compare-and-set)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    with db_errors():
        async with engine.connect() as conn:
            ids = [row.id for row in await conn.execute(payments_db.stranded_creating(cutoff, 500))]
    if ids:
        items: list[Delayed] = [(payment_message(CREATE_ADDRESS, (str(i),), prefix), None) for i in ids]
        await asyncio.get_running_loop().run_in_executor(executor, enqueue_many, broker, items)
        log.warning("requeued stranded payments", extra={"action": "stranded_payments", "count": len(ids)})
    return len(ids)
