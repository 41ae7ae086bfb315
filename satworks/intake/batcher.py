"""Group commit for job submissions: concurrent submissions share one INSERT and one broker call.

A submission is answered only after its row is committed and its message is in the broker. While
batches are being written the next one gathers, so batches grow with load and cost nothing idle.
If the broker refuses a batch, its rows are deleted again and the callers get 503: nothing is left
half-done. If the process dies between commit and enqueue, ``recovery.requeue_stranded_jobs`` hands
the committed jobs to the broker later (their rows keep ``enqueued = 0`` until then).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.client import BrokerClient
from satworks.broker.messages import Delayed, job_message
from satworks.db import jobs as jobs_db
from satworks.db.held import HeldConnection
from satworks.db.jobs import JobRecord, NewJob
from satworks.errors import Conflict, DependencyUnavailable
from satworks.intake.idempotency import check_replay
from satworks.jobs.catalog import max_age_ms

log = logging.getLogger(__name__)


def job_item(job: NewJob | JobRecord, delay_ms: int | None, default_max_age_ms: int) -> Delayed:
    """The job's message, with the age limit of its type, and its delay."""
    age = max_age_ms(job.type, default_max_age_ms)
    return job_message(job.id, job.type, job.queue, job.max_retries, delay_ms=delay_ms, max_age_ms=age), delay_ms


class Submission:
    __slots__ = ("delay_ms", "future", "job")

    def __init__(self, job: NewJob, delay_ms: int | None, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self.delay_ms = delay_ms
        self.future: asyncio.Future[tuple[JobRecord, bool]] = loop.create_future()


@dataclass
class _Written:
    """A batch after its INSERT committed, before its messages are in the broker."""

    fresh: list[Submission]  # inserted now: answered once their messages are in the broker
    inserted: dict[uuid.UUID, int]  # id -> seq of the fresh rows
    skipped: list[Submission]  # their key existed already: answered from the existing row
    existing: dict[tuple[uuid.UUID, str], JobRecord]
    repeats: list[tuple[Submission, Submission]]  # same key twice in the batch: (repeat, first)
    earlier: list[_Written]  # batches still on their way to the broker when this one was inserted
    done: asyncio.Future[bool]  # True once the fresh rows' messages are in the broker, False if undone


class IntakeBatcher:
    """Group commit with at most ``MAX_IN_FLIGHT`` batches in flight.

    Batches are written to Postgres one after the other, in order; while one batch's messages go to
    the broker, the next batch may already be inserted. A request is answered only when its own
    batch is in the broker; a replayed key whose original row belongs to a batch still on its way
    to the broker waits for that batch, and gets 503 if it is rolled back.
    """

    MAX_IN_FLIGHT = 2

    def __init__(
        self,
        engine: AsyncEngine,
        client: BrokerClient,
        *,
        batch_max: int,
        default_max_age_ms: int,
        on_enqueued: Callable[[Sequence[NewJob]], None] | None = None,
    ) -> None:
        """``on_enqueued``: called with each batch's new jobs once the broker has their messages."""
        self._default_max_age_ms = default_max_age_ms
        self._engine = engine
        self._inserts = HeldConnection(engine)  # the batch INSERTs run one after the other on it
        self._marks = HeldConnection(engine)  # and the coalesced ``enqueued`` marks on this one
        self._client = client
        self._batch_max = batch_max
        self._on_enqueued = on_enqueued
        self._pending: list[Submission] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.MAX_IN_FLIGHT)
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._isolated: list[Submission] = []  # from a batch that failed on its data: written one by one
        self._flying: list[_Written] = []  # written batches whose messages are not in the broker yet
        self._to_mark: list[uuid.UUID] = []
        self._marking: asyncio.Task[None] | None = None

    def submit(self, job: NewJob, delay_ms: int | None) -> asyncio.Future[tuple[JobRecord, bool]]:
        """Record and enqueue one job; the future's result is ``(job, replayed)``. ``replayed``: an
        earlier job with the same idempotency key. Raises ``Conflict`` when that key came with a
        different body. A future, not a coroutine: one frame less to step through per request."""
        submission = Submission(job, delay_ms, asyncio.get_running_loop())
        self._pending.append(submission)
        self._wakeup.set()
        return submission.future

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="intake-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        _fail(self._pending + self._isolated, DependencyUnavailable("intake stopped"))
        while self._background:  # batches on their way to the broker finish; so does their marking
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._inserts.close()
        await self._marks.close()

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending or self._isolated:
                await self._slots.acquire()  # while both slots are busy, the next batch keeps growing
                if self._isolated:
                    batch = [self._isolated.pop(0)]
                else:
                    batch, self._pending = self._pending[: self._batch_max], self._pending[self._batch_max :]
                try:
                    written = await self._write(batch)
                except BaseException as exc:
                    self._slots.release()
                    if isinstance(exc, jobs_db.ROW_ERRORS) and len(batch) > 1:
                        # Something in one row: insert them one by one, so only that request fails.
                        self._isolated.extend(batch)
                        continue
                    _fail(batch, exc)
                    if not isinstance(exc, Exception):
                        raise
                    if not isinstance(exc, DependencyUnavailable):
                        log.exception("intake batch failed", extra={"action": "intake_failed"})
                    continue
                self._flying.append(written)
                self._spawn(self._complete(written, batch))

    async def _write(self, batch: list[Submission]) -> _Written:
        """INSERT the batch and commit; read the rows of keys that existed already."""
        # Within one batch, a repeated (app, key) waits for the first occurrence's outcome.
        firsts: dict[tuple[uuid.UUID, str], Submission] = {}
        unique: list[Submission] = []
        repeats: list[tuple[Submission, Submission]] = []
        for sub in batch:
            key = sub.job.idempotency_key
            if key is not None:
                ident = (sub.job.app_id, key)
                first = firsts.get(ident)
                if first is not None:
                    repeats.append((sub, first))
                    continue
                firsts[ident] = sub
            unique.append(sub)

        # A batch that is not in flight now has its final rows: kept, or deleted before it left the list.
        earlier = list(self._flying)
        written = await jobs_db.insert_batch(self._inserts, [s.job for s in unique])
        inserted = written.inserted
        if len(inserted) < len(unique):
            fresh = [s for s in unique if s.job.id in inserted]
            skipped = [s for s in unique if s.job.id not in inserted]
        else:
            fresh, skipped = unique, []
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        return _Written(fresh, inserted, skipped, written.existing, repeats, earlier, done)

    async def _complete(self, written: _Written, batch: list[Submission]) -> None:
        """Hand the fresh rows to the broker, then answer every request of the batch."""
        try:
            fresh, inserted = written.fresh, written.inserted
            refused: BaseException | None = None
            try:
                if fresh:
                    await self._enqueue(fresh)
            except BaseException as exc:
                written.done.set_result(False)
                refused = exc
                _fail(fresh, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                written.done.set_result(True)
                for sub in fresh:
                    if not sub.future.done():  # done: its caller gave up (cancelled); the job stands
                        sub.future.set_result((sub.job.stored(inserted[sub.job.id]), False))
                if fresh:
                    self._mark_enqueued_later([s.job.id for s in fresh])
            finally:
                self._flying.remove(written)
            owners: dict[int, JobRecord | None] = {}  # skipped submission -> the job its key belongs to
            for sub in written.skipped:
                key = sub.job.idempotency_key
                job = written.existing.get((sub.job.app_id, key)) if key is not None else None
                for other in written.earlier:  # the row may be another batch's, still on its way
                    if job is not None and job.id in other.inserted and not await other.done:
                        job = None  # that batch was rolled back
                owners[id(sub)] = job
                self._answer_replay(sub, job)
            for sub, first in written.repeats:
                # A repeat is compared with the job its key belongs to, not with the first request's
                # answer: behind a first request that conflicts with the stored job, an equal body replays.
                # The first request's own outcome, not its future: its caller may have given up.
                if id(first) in owners:
                    self._answer_replay(sub, owners[id(first)])
                elif refused is not None:
                    _fail([sub], refused)
                else:
                    self._answer_replay(sub, first.job.stored(inserted[first.job.id]))
        except BaseException as exc:  # the batch's boundary: nobody is left waiting
            _fail(batch, exc)
            if not written.done.done():
                written.done.set_result(False)
            if not isinstance(exc, Exception):
                raise
            log.exception("intake batch failed", extra={"action": "intake_failed"})
        finally:
            written.earlier = []  # no chain of finished batches is kept alive
            self._slots.release()

    def _answer_replay(self, sub: Submission, job: JobRecord | None) -> None:
        if sub.future.done():  # its caller gave up
            return
        if job is None:  # the conflicting row vanished (its own batch was rolled back): try again
            sub.future.set_exception(DependencyUnavailable("concurrent request failed, retry"))
            return
        try:
            check_replay("job", job.id, job.request_hash, sub.job.request_hash)
        except Conflict as exc:
            sub.future.set_exception(exc)
        else:
            sub.future.set_result((job, True))

    async def _enqueue(self, fresh: list[Submission]) -> None:
        items = [job_item(s.job, s.delay_ms, self._default_max_age_ms) for s in fresh]
        enqueued = False
        try:
            await self._client.enqueue(items)  # BrokerUnavailable (503) when the broker refuses
            enqueued = True
        finally:
            if not enqueued:  # undo the rows: nothing half-done is left
                log.warning("broker refused a batch; rolling it back", extra={"action": "enqueue_failed"})
                await jobs_db.delete_unenqueued(self._engine, [s.job.id for s in fresh])
        if self._on_enqueued is not None:
            self._on_enqueued([s.job for s in fresh])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _mark_enqueued_later(self, ids: list[uuid.UUID]) -> None:
        """Background bookkeeping; ids that arrive while an UPDATE runs share the next one."""
        self._to_mark.extend(ids)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._mark_enqueued())
            self._background.add(self._marking)
            self._marking.add_done_callback(self._background.discard)

    async def _mark_enqueued(self) -> None:
        while self._to_mark:
            ids, self._to_mark = self._to_mark, []
            try:
                await jobs_db.mark_enqueued(self._marks, ids)
            except Exception:  # the task's boundary; the stranded sweep may enqueue them again (harmless)
                log.warning("could not mark jobs enqueued", extra={"action": "mark_enqueued_failed"})


def _fail(subs: list[Submission], exc: BaseException) -> None:
    error = exc if isinstance(exc, Exception) else DependencyUnavailable("intake stopped")
    for sub in subs:
        if not sub.future.done():
            sub.future.set_exception(error)
