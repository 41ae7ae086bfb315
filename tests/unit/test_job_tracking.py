"""Job tracking, in process: a Dramatiq ``Worker`` on a ``StubBroker`` runs the real actors, middleware
and status writer against a real database, as Dramatiq's own tests do (send, ``join()``, assert)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import default_middleware
from sqlalchemy import Engine

from satworks import clock
from satworks.broker.messages import job_message
from satworks.db.engine import sync_engine
from satworks.db.jobs import NewJob
from satworks.errors import DependencyUnavailable, InvalidPayload
from satworks.jobs import canary
from satworks.jobs.base import QUEUES, JobContext, JobType
from satworks.jobs.status import FINISHED, JobStatus
from satworks.settings import Settings
from satworks.workers.actors import declare_actors
from satworks.workers.middleware.tracking import JobTracking
from satworks.workers.status import Outcome, StatusWriter
from tests.unit.job_rows import new_row, read, store

MIN_BACKOFF_MS = 20
MAX_CRASHES = 3


class RecordingWriter(StatusWriter):
    """The real writer, also keeping every outcome it was asked to record (the states a row passed through)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, batch_max=64)
        self.outcomes: list[Outcome] = []
        self.ahead: list[uuid.UUID] = []  # the jobs claimed ahead, in order

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        super().record(outcome)

    def _ahead(self) -> list[Any]:
        items = super()._ahead()
        self.ahead += [job_id for _, (job_id, *_), _ in items]
        return items


@dataclass
class Stack:
    broker: StubBroker
    writer: RecordingWriter
    prefix: str
    ran: list[uuid.UUID] = field(default_factory=list)  # job ids, once per run of a job's function

    def send(self, row: NewJob, **message: Any) -> None:
        """Enqueue the job's message as the intake does (``message``: fields to change, e.g. its timestamp)."""
        sent = job_message(row.id, row.type, row.queue, row.max_retries, max_age_ms=60_000)
        self.broker.enqueue(sent.copy(**message) if message else sent)

    def join(self) -> None:
        for queue in QUEUES:
            self.broker.join(self.prefix + queue, fail_fast=False)


def job_types(ran: list[uuid.UUID]) -> dict[str, JobType]:
    def counted(ctx: JobContext, payload: canary.CanaryPayload) -> dict[str, object]:
        ran.append(ctx.job_id)
        return canary.run(ctx, payload)

    def nul_result(ctx: JobContext, payload: canary.CanaryPayload) -> dict[str, object]:
        ran.append(ctx.job_id)
        return {"text": "a\x00b"}

    def nul_error(ctx: JobContext, payload: canary.CanaryPayload) -> None:
        ran.append(ctx.job_id)
        raise InvalidPayload("a\x00b")

    def slow(ctx: JobContext, payload: canary.CanaryPayload) -> dict[str, object]:
        ran.append(ctx.job_id)
        time.sleep(0.05)  # the job's own work (50 ms), not a wait for something to happen
        return {}

    fast = {"min_backoff_ms": MIN_BACKOFF_MS, "max_backoff_ms": 2 * MIN_BACKOFF_MS}
    return {
        "canary": JobType(name="canary", payload=canary.CanaryPayload, run=counted, **fast),  # type: ignore[arg-type]
        "nul_result": JobType(name="nul_result", payload=canary.CanaryPayload, run=nul_result, **fast),  # type: ignore[arg-type]
        "nul_error": JobType(name="nul_error", payload=canary.CanaryPayload, run=nul_error, **fast),  # type: ignore[arg-type]
        "slow": JobType(name="slow", payload=canary.CanaryPayload, run=slow, **fast),  # type: ignore[arg-type]
    }


@pytest.fixture
def start_worker(base_settings: Settings, prefix: str) -> Iterator[Callable[..., Stack]]:
    """The one place the tracked worker is built: ``start_worker()`` runs it until the test ends."""
    running: list[tuple[Worker, Engine]] = []

    def start(*, database_url: str | None = None, threads: int = 8, claim_ahead_max_run_s: float = 0.0) -> Stack:
        settings = base_settings.model_copy(update={"queue_prefix": prefix})
        engine = sync_engine(database_url or settings.database_url, pool_size=2)
        writer = RecordingWriter(engine)
        ran: list[uuid.UUID] = []
        types = job_types(ran)
        tracking = JobTracking(
            writer,
            max_crashes=MAX_CRASHES,
            tracked=frozenset(types),
            patience_s=0,
            claim_ahead_max_run_s=claim_ahead_max_run_s,
        )
        middleware = [m() for m in default_middleware]  # as build_broker: tracking just before Retries
        retries_at = next(i for i, m in enumerate(middleware) if type(m).__name__ == "Retries")
        middleware.insert(retries_at, tracking)
        stack = Stack(StubBroker(middleware=middleware), writer, prefix, ran)
        for queue in QUEUES:
            stack.broker.declare_queue(prefix + queue)
        declare_actors(stack.broker, types, tracking, settings)
        worker = Worker(stack.broker, worker_timeout=100, worker_threads=threads)
        worker.start()
        running.append((worker, engine))
        return stack

    yield start
    for worker, engine in running:
        worker.stop()
        engine.dispose()


def test_a_job_that_returns_is_claimed_then_succeeded_with_its_result(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix, payload={"note": "hello"})
    store(db, row)

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["crashes"], job["error_type"]) == ("succeeded", 1, 0, None)
    assert job["result"]["attempt"] == 1
    assert job["started_at"] <= job["finished_at"]
    assert stack.ran == [row.id]


def test_a_transient_failure_is_retrying_with_its_next_retry_time_then_the_retry_succeeds(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix, payload={"fail": "transient", "fail_attempts": 1})
    store(db, row)
    sent_at = clock.utcnow()

    stack.send(row)
    stack.join()

    retrying, succeeded = stack.writer.outcomes
    assert (retrying.status, retrying.error_type) == (JobStatus.RETRYING, "ChaosRetry")
    assert retrying.next_retry_at is not None
    assert retrying.next_retry_at >= sent_at + timedelta(milliseconds=MIN_BACKOFF_MS)  # Dramatiq's backoff delay
    assert succeeded.status == JobStatus.SUCCEEDED
    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["next_retry_at"], job["error_type"]) == ("succeeded", 2, None, None)


def test_a_permanent_error_fails_the_job_at_once(start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix, payload={"fail": "permanent"}, max_retries=5)
    store(db, row)

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["error_type"]) == ("failed", 1, "ChaosFailure")
    assert "asked to fail (permanent)" in job["error_message"]
    assert len(stack.broker.dead_letters) == 1


def test_a_job_out_of_retries_is_dead_with_its_last_error(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix, payload={"fail": "transient"}, max_retries=2)
    store(db, row)

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["error_type"], job["next_retry_at"]) == ("dead", 3, "ChaosRetry", None)
    assert [o.status for o in stack.writer.outcomes] == [JobStatus.RETRYING, JobStatus.RETRYING, JobStatus.DEAD]
    assert len(stack.broker.dead_letters) == 1


@pytest.mark.parametrize("status", ["cancelled", "succeeded"])
def test_the_message_of_a_cancelled_or_finished_job_is_skipped_and_the_job_never_runs(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str, status: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix)
    store(db, row, status=status)

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["started_at"]) == (status, 0, None)
    assert stack.ran == []
    assert stack.broker.dead_letters == []  # acknowledged: nothing to retry


def test_a_job_found_running_again_counts_a_crash_and_runs(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix)
    store(db, row, status="running", attempts=1, started_attempt=1)  # its worker died mid-run; the message came back

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["crashes"]) == ("succeeded", 2, 1)
    assert stack.ran == [row.id]


def test_a_job_found_running_that_its_dead_worker_never_started_counts_no_crash_and_runs(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix)
    store(db, row, status="running", attempts=1, started_attempt=0)  # claimed ahead; its worker died first

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["crashes"], job["started_attempt"]) == ("succeeded", 2, 0, 2)
    assert stack.ran == [row.id]


def test_a_job_that_crashed_its_worker_max_crashes_times_is_dead_and_never_run_again(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix)
    store(db, row, status="running", attempts=MAX_CRASHES, crashes=MAX_CRASHES - 1, started_attempt=MAX_CRASHES)

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["crashes"], job["error_type"]) == ("dead", MAX_CRASHES, "WorkerCrashed")
    assert job["finished_at"] is not None
    assert stack.ran == []
    assert len(stack.broker.dead_letters) == 1


def test_a_message_past_its_age_limit_kills_the_job_as_age_limit_exceeded(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    row = new_row(app_id, prefix)
    store(db, row)

    stack.send(row, message_timestamp=clock.unix_ms() - 61_000)  # created longer ago than its 60 s limit
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert (job["status"], job["attempts"], job["error_type"]) == ("dead", 0, "AgeLimitExceeded")
    assert stack.ran == []


def test_a_claim_that_cannot_be_written_never_runs_the_job(start_worker: Any, app_id: uuid.UUID, prefix: str) -> None:
    stack = start_worker(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    row = new_row(app_id, prefix, max_retries=0)

    stack.send(row)
    stack.join()

    assert stack.ran == []
    (message,) = stack.broker.dead_letters
    assert isinstance(message._exception, DependencyUnavailable)


@pytest.mark.parametrize("job_type", ["nul_result", "nul_error"])
def test_a_result_or_error_postgres_cannot_store_does_not_leave_the_job_running(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str, job_type: str
) -> None:
    stack = start_worker()
    row = dataclasses.replace(new_row(app_id, prefix), type=job_type)
    store(db, row)

    stack.send(row)
    stack.join()

    job = read(db, row.id)
    assert job is not None
    assert JobStatus(job["status"]) in FINISHED, job


def test_an_unstorable_result_fails_the_job_naming_where_and_an_unstorable_error_is_kept_readable(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker()
    result_row = dataclasses.replace(new_row(app_id, prefix), type="nul_result")
    error_row = dataclasses.replace(new_row(app_id, prefix), type="nul_error")
    store(db, result_row)
    store(db, error_row)

    stack.send(result_row)
    stack.send(error_row)
    stack.join()

    result_job, error_job = read(db, result_row.id), read(db, error_row.id)
    assert result_job is not None and error_job is not None
    assert (result_job["status"], result_job["error_type"], result_job["result"]) == (
        JobStatus.FAILED,
        "UnstorableResult",
        None,
    )
    assert result_job["error_message"] == "the job's result cannot be stored: text: text must not contain U+0000"
    assert (error_job["status"], error_job["error_message"]) == (JobStatus.FAILED, "a\ufffdb")


def test_jobs_waiting_behind_quick_ones_are_claimed_ahead_and_each_start_is_recorded(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker(threads=1, claim_ahead_max_run_s=10.0)
    rows = [new_row(app_id, prefix) for _ in range(20)]
    for row in rows:
        store(db, row)

    for row in rows:
        stack.send(row)
    stack.join()

    assert stack.writer.ahead, "no job was claimed ahead"
    assert set(stack.writer.ahead) < {row.id for row in rows}
    assert len(stack.writer.ahead) == len(set(stack.writer.ahead))  # each claimed once
    jobs = [read(db, row.id) for row in rows]
    states = {(j["status"], j["attempts"], j["crashes"], j["started_attempt"]) for j in jobs if j is not None}
    assert states == {("succeeded", 1, 0, 1)}
    assert sorted(stack.ran) == sorted(row.id for row in rows)


def test_jobs_waiting_behind_slower_ones_than_the_bound_are_claimed_as_they_start(
    start_worker: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    stack = start_worker(threads=1, claim_ahead_max_run_s=0.01)  # the jobs take 50 ms
    rows = [dataclasses.replace(new_row(app_id, prefix), type="slow") for _ in range(6)]
    for row in rows:
        store(db, row)

    for row in rows:
        stack.send(row)
    stack.join()

    assert stack.writer.ahead == []
    assert {read(db, row.id)["status"] for row in rows} == {"succeeded"}  # type: ignore[index]
