"""Keeps each job's row in step with its message: running, retrying, succeeded, failed, dead.

Actors never touch status rows. A message whose job was cancelled or already finished is skipped,
and a job whose worker died ``max_crashes`` times while running it is dead-lettered instead of
being handed to the next worker to kill.

When every worker thread of a process is busy, messages wait in Dramatiq's work queue. Each batch
the status writer commits then also claims the jobs of those messages (``reserve``), so that commit
overlaps the jobs ahead of them instead of holding up the thread that takes them: a worker thread
finds its next job claimed already. Such a job reads ``running`` from its claim (it can no longer be
cancelled); its start is recorded when a thread takes it, and a worker that stops hands the claims
of the jobs it never started back (``release``) before Dramatiq returns their messages. Only while
the process' jobs run ``claim_ahead_max_run_s`` or less on average (a moving average): a job claimed
ahead then starts within about that long. A message an idle thread takes at once, or one waiting
behind slower jobs, is claimed as its job starts.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from satworks import clock, json_input
from satworks.broker.messages import ACK_AFTER, message_generation
from satworks.errors import DependencyUnavailable, PermanentError
from satworks.jobs.status import JobStatus
from satworks.logs import job_id_var
from satworks.workers.acks import DeferredAcks
from satworks.workers.pending import Pending
from satworks.workers.status import Claim, Outcome, StatusWriter

log = logging.getLogger(__name__)

_SKIPPED_BY_US = "satworks_skipped"
_RESERVED = "_satworks_reserved"  # on a message proxy: its claim made ahead (a ``Pending``)
T = TypeVar("T")

OUTCOME_PATIENCE_S = 30.0
"""How long a state write may wait out a database blip before giving up (``outcome_lost`` for an outcome)."""


class JobTracking(Middleware):
    def __init__(
        self,
        writer: StatusWriter,
        *,
        max_crashes: int,
        tracked: frozenset[str],
        patience_s: float = OUTCOME_PATIENCE_S,
        claim_ahead_max_run_s: float = 0.0,
    ) -> None:
        self.patience_s = patience_s  # how long a state write may wait out a database blip
        self.writer = writer
        self.max_crashes = max_crashes
        self.tracked = tracked  # actor names of app job types; platform-internal actors keep no job row
        self.acks = DeferredAcks(self._record)  # used where the broker defers acks (``defers_acks``)
        self._local = threading.local()
        self._work_queue: Any = None  # Dramatiq's, once the worker boots: what waits for a thread
        self._ahead_max_run_s = claim_ahead_max_run_s
        self._mean_run_s: float | None = None  # moving average of this process' runs; None: none yet
        self._reserved: dict[int, Pending[Claim | None]] = {}  # id(message): claims made ahead

    # -- lifecycle ------------------------------------------------------------------------------------
    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.writer.claimers = worker.worker_threads  # each has at most one claim waiting
        work_queue = getattr(worker, "work_queue", None)
        if self._ahead_max_run_s > 0 and isinstance(work_queue, queue.PriorityQueue):  # as known: claim ahead
            self._work_queue = work_queue
            self.writer.claim_ahead = self._claims_ahead
        self.writer.start()
        self.acks.start(getattr(broker, "ack_all", None))

    def before_consumer_thread_shutdown(self, broker: dramatiq.Broker, thread: Any) -> None:
        # The worker threads have stopped (Dramatiq stops them first): no job starts and no outcome is
        # handed over any more, and the consumers are still open for the acks still waiting. Dramatiq
        # returns the messages still in its buffer to the broker next: their claims go back first.
        self._release_reserved()
        self.acks.stop()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        # After Dramatiq's threads have stopped: a thread mid-job still needs the writer for its outcome,
        # and the deferred acks need it for theirs.
        self.acks.stop()
        self.writer.stop()

    # -- per message ----------------------------------------------------------------------------------
    def current(self) -> Claim:
        """The claim of the job this thread is running (set before the actor is called)."""
        claim: Claim = self._local.claim
        return claim

    def _claims_ahead(self) -> list[tuple[uuid.UUID, int, Pending[Claim | None]]]:
        """Claims for the jobs of the messages waiting in the work queue that have none yet: called by
        the status writer for each batch. A message is marked under the queue's lock, so a thread
        that takes it either finds the mark and waits for that claim, or took it first and claims
        itself."""
        ahead: list[tuple[uuid.UUID, int, Pending[Claim | None]]] = []
        mean = self._mean_run_s
        if mean is None or mean > self._ahead_max_run_s:  # a job claimed now could wait long: not "running"
            return ahead
        with self._work_queue.mutex:
            if self._ahead_max_run_s <= 0:  # the worker is stopping (``_release_reserved``)
                return ahead
            for item in self._work_queue.queue:
                message = getattr(item, "message", None)
                if message is None or _RESERVED in message.__dict__ or message.actor_name not in self.tracked:
                    continue
                try:
                    job_id, generation = uuid.UUID(message.args[0]), message_generation(message)
                except (IndexError, TypeError, ValueError):  # not a job's message: refused as it starts
                    continue
                reservation: Pending[Claim | None] = Pending()
                message.__dict__[_RESERVED] = reservation
                self._reserved[id(message)] = reservation
                ahead.append((job_id, generation, reservation))
        return ahead

    def _processed(self, message: Any) -> None:
        if message.__dict__.pop(_RESERVED, None) is not None:
            self._reserved.pop(id(message), None)

    def _release_reserved(self) -> None:
        """Give back the claims made ahead for messages no thread took (the worker is stopping)."""
        if self._work_queue is None:
            return
        with self._work_queue.mutex:  # a batch being built now has registered its claims, a later one makes none
            self._ahead_max_run_s = 0.0
            reserved, self._reserved = list(self._reserved.values()), {}
        held: list[tuple[uuid.UUID, int]] = []
        for reservation in reserved:
            with contextlib.suppress(Exception):  # not claimed, or unknown: its next claim finds out
                claim = reservation.result(timeout=self.patience_s)
                if claim is not None:
                    held.append((claim.job_id, claim.attempts))
        if not held:
            return
        try:
            _patiently(lambda: self.writer.release(held), self.patience_s)
        except DependencyUnavailable:  # the next claims find them running but never started
            log.warning("claims made ahead not released", extra={"action": "release_failed", "n": len(held)})

    def _claim(self, message: Any, job_id: uuid.UUID) -> Claim | None:
        """The job's claim: the one made ahead for ``message`` if any (and its start then recorded),
        else one made now."""
        generation = message_generation(message)
        reservation: Pending[Claim | None] | None = message.__dict__.pop(_RESERVED, None)
        if reservation is None:
            return _patiently(lambda: self.writer.claim(job_id, generation), self.patience_s)
        self._reserved.pop(id(message), None)
        try:
            claim = reservation.result(timeout=self.patience_s)
        except Exception:  # the writer's error (database lost): claim again, patiently, as it starts
            return _patiently(lambda: self.writer.claim(job_id, generation), self.patience_s)
        if claim is None or claim.crashes >= self.max_crashes:
            return claim
        if claim.unproven:  # a worker died holding an earlier attempt: this start must be on record first
            _patiently(lambda: self.writer.record_start(job_id, claim.attempts), self.patience_s)
        else:  # committed with a later batch, mostly dropped for the job's outcome in the same one
            self.writer.started(job_id, claim.attempts)
        return claim

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.claim = None
        if message.actor_name not in self.tracked:
            return
        job_id = uuid.UUID(message.args[0])
        job_id_var.set(str(job_id))
        self._local.result, self._local.retry_delay_ms = None, None
        claim = self._claim(message, job_id)
        self._local.started = time.perf_counter()
        if claim is None:
            message.options[_SKIPPED_BY_US] = True
            log.info("job not runnable, message skipped", extra={"action": "job_skipped"})
            raise SkipMessage()
        if claim.crashes >= self.max_crashes:
            self.writer.record(
                Outcome(
                    job_id,
                    JobStatus.DEAD,
                    error_type="WorkerCrashed",
                    error_message=f"the worker died {claim.crashes} times while running this job",
                    finished_at=_now(),
                )
            )
            message.options[_SKIPPED_BY_US] = True
            message.fail()
            log.error("job crashed its worker too often", extra={"action": "job_crash_loop"})
            raise SkipMessage()
        self._local.claim = claim

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        # Retries re-enqueues a failed message with its backoff delay from our thread: remember it
        # (only for the job this thread runs: a platform job may enqueue other jobs' messages).
        claim: Claim | None = getattr(self._local, "claim", None)
        ours = claim is not None and message.args and message.args[0] == str(claim.job_id)
        if delay is not None and message.options.get("retries") and ours and message.actor_name in self.tracked:
            self._local.retry_delay_ms = delay

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._processed(message)
        claim: Claim | None = self._local.claim
        if claim is not None:  # None: the claim itself failed, and Retries has re-enqueued the message
            self._ran(time.perf_counter() - self._local.started)
            outcome = self._outcome(claim, message, exception)
            if getattr(broker, "defers_acks", False):
                # The broker acks once the outcome is committed; this thread goes on meanwhile.
                setattr(message, ACK_AFTER, self.acks.after(outcome, self.writer.submit(outcome)))
            else:
                self._record(outcome)
        job_id_var.set(None)

    def _ran(self, seconds: float) -> None:
        """Fold one run into the moving average (threads race here harmlessly: a run may be lost)."""
        mean = self._mean_run_s
        self._mean_run_s = seconds if mean is None else mean + RUN_AVERAGE_WEIGHT * (seconds - mean)

    def _record(self, outcome: Outcome) -> None:
        """Write an outcome through a database blip; past the patience the loss is reported, and the
        message is acknowledged regardless: the row stays "running" until the reconciler (or a
        redelivery) settles it. Logged loudly: an operator must know."""
        try:
            _patiently(lambda: self.writer.record(outcome), self.patience_s)
        except DependencyUnavailable:
            log.error("job outcome could not be recorded", extra={"action": "outcome_lost"})

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._processed(message)
        if message.options.pop(_SKIPPED_BY_US, False) or message.actor_name not in self.tracked:
            return
        # Skipped by Dramatiq's own middleware (age limit): the job will not run again.
        self.writer.kill(
            Outcome(
                uuid.UUID(message.args[0]),
                JobStatus.DEAD,
                error_type="AgeLimitExceeded",
                error_message="the job waited longer than its maximum age",
                finished_at=_now(),
            )
        )

    def _outcome(self, claim: Claim, message: Any, exception: BaseException | None) -> Outcome:
        if exception is None:
            try:
                json_input.check(self._local.result, max_depth=RESULT_MAX_DEPTH)
            except json_input.JsonRefused as refused:  # Postgres would refuse the row: the job would stay running
                where = ".".join(str(part) for part in refused.loc) or "result"
                return Outcome(
                    claim.job_id,
                    JobStatus.FAILED,
                    error_type="UnstorableResult",
                    error_message=f"the job's result cannot be stored: {where}: {refused.message}",
                    finished_at=_now(),
                )
            return Outcome(claim.job_id, JobStatus.SUCCEEDED, result=self._local.result, finished_at=_now())
        error_type = type(exception).__name__
        error_message = _storable(str(exception)[:2000]) or error_type
        if message.failed:
            status = JobStatus.FAILED if isinstance(exception, PermanentError) else JobStatus.DEAD
            return Outcome(claim.job_id, status, error_type=error_type, error_message=error_message, finished_at=_now())
        delay = self._local.retry_delay_ms or 0
        return Outcome(
            claim.job_id,
            JobStatus.RETRYING,
            error_type=error_type,
            error_message=error_message,
            next_retry_at=_now() + timedelta(milliseconds=delay),
        )

    def set_result(self, result: dict[str, Any] | None) -> None:
        self._local.result = result


RUN_AVERAGE_WEIGHT = 0.05
"""Weight of the latest run in the moving average of run times (about the last 20 runs count)."""

RESULT_MAX_DEPTH = 512  # nesting of a job's result; deeper is refused like text Postgres cannot store


def _storable(text: str) -> str:
    """``text`` with what Postgres text cannot hold (U+0000, lone surrogates) replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _now() -> datetime:
    return clock.utcnow()


def _patiently(write: Callable[[], T], patience_s: float) -> T:
    """Retry a state write through a short database outage (0.1 s doubling to 2 s), then give up.

    Giving up on a claim raises, so Dramatiq retries the message later; waiting first keeps a
    blip from spending a job's retries.
    """
    deadline = time.monotonic() + patience_s
    pause = 0.1
    while True:
        try:
            return write()
        except DependencyUnavailable:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("state write failed; retrying", extra={"action": "status_write_retry"})
            time.sleep(pause)
            pause = min(2.0, pause * 2)
