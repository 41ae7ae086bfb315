"""The workers' status writer, in process: claims, outcomes and kills group-committed on a real database.

A batch is made deterministic by queueing its calls before the writer's thread starts: the thread's
first read then takes them all.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from satworks import clock
from satworks.db.engine import sync_engine
from satworks.errors import DependencyUnavailable
from satworks.jobs.status import JobStatus
from satworks.settings import Settings
from satworks.workers.status import Claim, Outcome, StatusWriter
from tests.support import wait_until
from tests.unit.job_rows import new_row, read, store

NUL = "a\x00b"


@pytest.fixture
def new_writer(base_settings: Settings) -> Iterator[Callable[..., StatusWriter]]:
    """The one place a ``StatusWriter`` is built: ``new_writer()`` (not started), stopped when the test ends."""
    made: list[tuple[StatusWriter, Engine]] = []

    def new(*, database_url: str | None = None, **options: Any) -> StatusWriter:
        engine = sync_engine(database_url or base_settings.database_url, pool_size=2)
        writer = (BatchRecordingWriter if options else StatusWriter)(engine, **{"batch_max": 64, **options})
        made.append((writer, engine))
        return writer

    yield new
    for writer, engine in made:
        if writer._thread.ident is not None:  # started
            writer.stop()
        engine.dispose()


class BatchRecordingWriter(StatusWriter):
    """The real writer, also keeping the size of every batch it committed."""

    def __init__(self, engine: Engine, **options: Any) -> None:
        super().__init__(engine, **options)
        self.batches: list[int] = []

    def _flush(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        super()._flush(batch)


def in_one_batch(writer: StatusWriter, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` (writer methods) from their own threads as one batch; each result or its error."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    wait_until(lambda: writer._inbox.qsize() == len(calls), what="every call to wait in the writer's inbox")
    writer.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def claimed_one_by_one(writer: StatusWriter, jobs: list[uuid.UUID]) -> list[Any]:
    """Claim ``jobs`` from threads of their own, each taken by the writer before the next comes; the
    claims (``None`` where one did not come back within 30 s)."""
    claims: list[Any] = [None] * len(jobs)
    threads = []
    for i, job_id in enumerate(jobs):
        thread = threading.Thread(target=lambda i=i, j=job_id: claims.__setitem__(i, writer.claim(j)))
        thread.start()
        threads.append(thread)
        wait_until(lambda: writer._inbox.empty(), what="the claim taken by the writer")
    for thread in threads:
        thread.join(timeout=30)
    return claims


def done(job_id: uuid.UUID, **fields: Any) -> Outcome:
    return Outcome(job_id, JobStatus.SUCCEEDED, finished_at=clock.utcnow(), **fields)


def test_claim_moves_a_waiting_job_to_running_and_returns_its_payload(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    row = new_row(app_id, prefix, payload={"note": "hi"})
    job_id = store(db, row)

    claim = writer.claim(job_id)

    assert claim == Claim(job_id, "canary", row.payload, 1, 0)
    assert claim.payload["note"] == "hi"
    stored = read(db, job_id)
    assert stored is not None
    assert (stored["status"], stored["attempts"], stored["started_at"] is not None) == ("running", 1, True)


@pytest.mark.parametrize("status", ["cancelled", "succeeded", "dead"])
def test_claim_of_a_cancelled_or_finished_job_is_none_and_changes_nothing(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str, status: str
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix), status=status)

    assert writer.claim(job_id) is None
    assert writer.claim(uuid.uuid4()) is None  # unknown
    row = read(db, job_id)
    assert row is not None
    assert (row["status"], row["attempts"]) == (status, 0)


@pytest.mark.parametrize("started_attempt", [1, None], ids=["started", "row_from_before_started_attempt"])
def test_claim_of_a_job_still_running_counts_a_crash(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str, started_attempt: int | None
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix), status="running", attempts=1, started_attempt=started_attempt)

    claim = writer.claim(job_id)

    assert claim is not None
    assert (claim.attempts, claim.crashes, claim.unproven) == (2, 1, False)


def test_a_claim_made_ahead_is_running_but_not_started_until_its_start_is_recorded(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix))

    claim = writer.reserve(job_id).result(timeout=30)

    assert claim is not None
    assert (claim.attempts, claim.crashes, claim.unproven) == (1, 0, False)
    row = read(db, job_id)
    assert row is not None
    assert (row["status"], row["attempts"], row["started_attempt"]) == ("running", 1, 0)
    writer.started(job_id, claim.attempts).result(timeout=30)
    assert read(db, job_id)["started_attempt"] == 1  # type: ignore[index]


def test_a_job_whose_worker_died_while_it_waited_claimed_ahead_counts_no_crash_and_is_unproven(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix))
    assert writer.reserve(job_id).result(timeout=30) is not None  # ... and the worker dies

    claim = writer.reserve(job_id).result(timeout=30)  # the message, redelivered

    assert claim is not None
    assert (claim.attempts, claim.crashes, claim.unproven) == (2, 0, True)
    writer.record_start(job_id, claim.attempts)
    writer.record(Outcome(job_id, JobStatus.SUCCEEDED, result={}, finished_at=clock.utcnow()))
    row = read(db, job_id)
    assert row is not None
    assert (row["status"], row["crashes"], row["started_attempt"]) == ("succeeded", 0, 2)


def test_a_job_whose_worker_died_after_its_start_was_recorded_counts_a_crash(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix))
    first = writer.reserve(job_id).result(timeout=30)
    assert first is not None
    writer.record_start(job_id, first.attempts)  # ... and the worker dies running it

    claim = writer.reserve(job_id).result(timeout=30)

    assert claim is not None
    assert (claim.attempts, claim.crashes, claim.unproven) == (2, 1, False)


def test_released_claims_made_ahead_wait_again_as_if_never_claimed_and_started_ones_stay_running(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    never, started = store(db, new_row(app_id, prefix)), store(db, new_row(app_id, prefix))
    claims = [writer.reserve(job_id).result(timeout=30) for job_id in (never, started)]
    assert all(claim is not None and claim.attempts == 1 for claim in claims)
    writer.record_start(started, 1)

    writer.release([(never, 1), (started, 1)])

    back, running = read(db, never), read(db, started)
    assert back is not None and running is not None
    assert (back["status"], back["attempts"], back["crashes"], back["started_at"]) == ("queued", 0, 0, None)
    assert (running["status"], running["attempts"]) == ("running", 1)
    again = writer.claim(never)
    assert again is not None and (again.attempts, again.crashes) == (1, 0)


def test_a_start_and_the_outcome_of_the_same_job_in_one_batch_leave_it_finished_and_started(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix))
    claim = writer.reserve(job_id).result(timeout=30)
    assert claim is not None
    writer.stop()
    writer = new_writer(gather_s=0.0)  # a second writer; this batch is built before its thread starts
    outcome = Outcome(job_id, JobStatus.SUCCEEDED, result={"n": 1}, finished_at=clock.utcnow())

    in_one_batch(writer, [lambda: writer.record_start(job_id, 1), lambda: writer.record(outcome)])

    assert writer.batches == [2]
    row = read(db, job_id)
    assert row is not None
    assert (row["status"], row["result"], row["started_attempt"]) == ("succeeded", {"n": 1}, 1)


def test_an_outcome_applies_only_to_a_running_job_so_a_second_one_is_a_no_op(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    job_id = store(db, new_row(app_id, prefix), status="running", attempts=1)

    writer.record(done(job_id, result={"ok": True}))
    writer.record(Outcome(job_id, JobStatus.DEAD, error_type="Late", finished_at=clock.utcnow()))

    row = read(db, job_id)
    assert row is not None
    assert (row["status"], row["result"], row["error_type"]) == ("succeeded", {"ok": True}, None)


@pytest.mark.parametrize("with_kill", [False, True], ids=["one-statement", "statement-by-statement"])
def test_an_outcome_postgres_refuses_fails_only_its_own_waiter_and_the_rest_of_the_batch_is_written(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str, with_kill: bool
) -> None:
    writer = new_writer()
    broken = store(db, new_row(app_id, prefix), status="running", attempts=1)
    finished = store(db, new_row(app_id, prefix), status="running", attempts=1)
    waiting = store(db, new_row(app_id, prefix))
    too_old = store(db, new_row(app_id, prefix))
    calls: list[Callable[[], Any]] = [
        lambda: writer.record(done(broken, result={"text": NUL})),  # jsonb cannot hold U+0000
        lambda: writer.record(done(finished, result={"ok": True})),
        lambda: writer.claim(waiting),
    ]
    if with_kill:  # a kill makes the writer send its statements one after the other
        calls.append(lambda: writer.kill(Outcome(too_old, JobStatus.DEAD, error_type="AgeLimitExceeded")))

    results = in_one_batch(writer, calls)

    assert isinstance(results[0], psycopg.DataError)
    assert results[1] is None
    assert isinstance(results[2], Claim) and results[2].job_id == waiting
    rows = {job_id: read(db, job_id) for job_id in (broken, finished, waiting, too_old)}
    assert {job_id: row["status"] for job_id, row in rows.items() if row} == {
        broken: "running",  # its waiter has the error; JobTracking decides what becomes of the job
        finished: "succeeded",
        waiting: "running",
        too_old: "dead" if with_kill else "queued",
    }
    # The writer goes on with the next batch.
    writer.record(done(broken, result={"text": "ab"}))
    assert read(db, broken)["status"] == "succeeded"  # type: ignore[index]


def test_a_kill_with_u0000_in_its_message_fails_only_its_own_waiter(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    nul_killed = store(db, new_row(app_id, prefix))
    killed = store(db, new_row(app_id, prefix))

    results = in_one_batch(
        writer,
        [
            lambda: writer.kill(Outcome(nul_killed, JobStatus.DEAD, error_type="X", error_message=NUL)),
            lambda: writer.kill(Outcome(killed, JobStatus.DEAD, error_type="X", error_message="too old")),
        ],
    )

    assert isinstance(results[0], psycopg.DataError)
    assert results[1] is None
    assert read(db, killed)["status"] == "dead"  # type: ignore[index]


def test_a_database_that_cannot_be_reached_fails_the_waiter_with_dependency_unavailable(
    new_writer: Any, app_id: uuid.UUID
) -> None:
    writer = new_writer(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    writer.start()

    with pytest.raises(DependencyUnavailable):
        writer.claim(uuid.uuid4())


def test_a_connection_lost_between_batches_fails_one_batch_and_the_next_gets_a_fresh_one(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer()
    writer.start()
    first = store(db, new_row(app_id, prefix))
    assert writer.claim(first) is not None
    with db.begin() as conn:  # the server drops the writer's connection (restart, failover, idle timeout)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": writer._conn.info.backend_pid})  # type: ignore[union-attr]

    second = store(db, new_row(app_id, prefix))
    with pytest.raises(DependencyUnavailable):
        writer.claim(second)
    claim = writer.claim(second)  # the message's retry

    assert claim is not None and claim.attempts == 1


def test_after_a_batch_of_several_the_next_one_waits_for_more_writes_before_its_commit(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer(batch_max=3, gather_s=60.0)  # a batch ends when full, long before 60 s
    first = [store(db, new_row(app_id, prefix)) for _ in range(2)]
    in_one_batch(writer, [lambda j=j: writer.claim(j) for j in first])  # busy: a batch of 2
    later = [store(db, new_row(app_id, prefix)) for _ in range(3)]
    claims = claimed_one_by_one(writer, later)

    assert writer.batches == [2, 3]  # without the wait: [2, 1, ...], each claim its own commit
    assert [c.job_id for c in claims] == later


def test_after_a_lone_write_the_next_batch_is_committed_at_once(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer(batch_max=64, gather_s=60.0)  # waiting would hold each claim for a minute
    writer.start()
    jobs = [store(db, new_row(app_id, prefix)) for _ in range(3)]

    claims = [writer.claim(job_id) for job_id in jobs]  # each waits for its commit; none waits 60 s

    assert [c.job_id for c in claims] == jobs
    assert writer.batches == [1, 1, 1]


def test_a_batch_holding_a_claim_of_every_worker_thread_is_committed_without_the_wait(
    new_writer: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    writer = new_writer(batch_max=64, gather_s=60.0)  # waiting would hold the claims for a minute
    writer.claimers = 2  # the worker's threads: no third claim can come
    first = [store(db, new_row(app_id, prefix)) for _ in range(2)]
    in_one_batch(writer, [lambda j=j: writer.claim(j) for j in first])  # busy: the next batch would wait
    later = [store(db, new_row(app_id, prefix)) for _ in range(2)]
    claims = claimed_one_by_one(writer, later)  # the first claim alone leaves the writer waiting

    assert [c.job_id for c in claims] == later  # not None: neither waited out the 60 s
    assert writer.batches == [2, 2]  # the second claim joined the waiting batch, which then committed
