"""The intake's group commit, in process: a real database, Dramatiq's StubBroker, no HTTP.

Batches form deterministically: requests submitted before the event loop next runs the batcher share
one batch, and a broker that holds its first enqueue keeps that batch in flight while the next forms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.client import BrokerClient
from satworks.db import jobs as jobs_db
from satworks.db.engine import async_engine
from satworks.db.held import HeldConnection
from satworks.db.jobs import NewJob
from satworks.errors import Conflict, DependencyUnavailable
from satworks.intake.batcher import IntakeBatcher
from satworks.jobs.base import QUEUES
from satworks.settings import Settings
from tests.unit.job_rows import new_row, read, rows_with_key

Result = tuple[dict[str, Any], bool] | BaseException


class RefusingBroker(StubBroker):
    """A broker that is down: every enqueue fails as a lost connection would."""

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        raise ConnectionError("broker unreachable")


class HoldingBroker(StubBroker):
    """Holds its first enqueue until a later one arrives, then refuses it or lets it through.

    A batch whose message is held stays in flight (committed, not yet in the broker), so the next
    batch is written while it is; that next batch's own enqueue lets the held one go.
    """

    def __init__(self, *, refuse_first: bool) -> None:
        super().__init__()
        self.refuse_first = refuse_first
        self.holding = threading.Event()  # the first enqueue has arrived and waits
        self.release = threading.Event()
        self._first = True
        self._lock = threading.Lock()

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        with self._lock:
            first, self._first = self._first, False
        if not first:
            self.release.set()
            return super().enqueue(message, delay=delay)
        self.holding.set()
        assert self.release.wait(timeout=30), "no second enqueue came to release the first"
        if self.refuse_first:
            raise ConnectionError("broker unreachable")
        return super().enqueue(message, delay=delay)


def declared(broker: StubBroker, prefix: str) -> StubBroker:
    for queue in QUEUES:
        broker.declare_queue(prefix + queue)
    return broker


def queued_job_ids(broker: StubBroker, queue: str) -> list[str]:
    return [dramatiq.Message.decode(data).args[0] for data in list(broker.queues[queue].queue)]


@pytest.fixture
async def intake_engine(base_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = async_engine(base_settings.database_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
async def start_batcher(intake_engine: AsyncEngine) -> AsyncIterator[Callable[[StubBroker], IntakeBatcher]]:
    """The one place an ``IntakeBatcher`` is built: ``start_batcher(broker)`` runs one until the test ends."""
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-intake")
    started: list[IntakeBatcher] = []

    def start(broker: StubBroker) -> IntakeBatcher:
        batcher = IntakeBatcher(
            intake_engine,
            BrokerClient(broker, executor),
            batch_max=100,
            default_max_age_ms=60_000,
            on_enqueued=lambda rows: None,
        )
        batcher.start()
        started.append(batcher)
        return batcher

    yield start
    for batcher in started:
        await batcher.stop()
    executor.shutdown(wait=True)


async def submit_together(batcher: IntakeBatcher, *rows: NewJob) -> list[Result]:
    """Submit ``rows`` at once, so they share one batch; each result is ``(row, replayed)`` or the error."""
    return await asyncio.gather(*(batcher.submit(row, None) for row in rows), return_exceptions=True)


def insert_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows of each batch INSERT from now on (filled in as they run; the batcher sends
    them through its held connection)."""
    sizes: list[int] = []
    run = HeldConnection.run

    async def seen(self: HeldConnection, statement: str, params: Any) -> list[tuple[Any, ...]]:
        if statement == jobs_db.INSERT_BATCH:
            sizes.append(params[0].count('"idempotency_key"'))
        return await run(self, statement, params)

    monkeypatch.setattr(HeldConnection, "run", seen)
    return sizes


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        ({"payload": {"note": "a\x00b"}}, DataError),  # jsonb cannot hold U+0000
        ({"app_id": uuid.uuid4()}, IntegrityError),  # no such app
        ({"priority": "urgent"}, IntegrityError),  # outside the check constraint
    ],
    ids=["nul-in-payload", "unknown-app", "bad-priority"],
)
async def test_a_row_postgres_refuses_fails_only_its_own_request_and_the_rest_of_its_batch_is_stored(
    start_batcher: Any,
    monkeypatch: pytest.MonkeyPatch,
    db: Engine,
    app_id: uuid.UUID,
    prefix: str,
    spoil: dict[str, Any],
    error: type[Exception],
) -> None:
    broker = declared(StubBroker(), prefix)
    batcher = start_batcher(broker)
    sizes = insert_sizes(monkeypatch)
    good = [new_row(app_id, prefix, payload={"note": f"good {i}"}) for i in range(4)]
    bad = dataclasses.replace(new_row(app_id, prefix), **spoil)

    results = await submit_together(batcher, good[0], good[1], bad, good[2], good[3])

    assert isinstance(results[2], error)
    assert read(db, bad.id) is None
    for row, result in zip(good, results[:2] + results[3:], strict=True):
        assert not isinstance(result, BaseException), result
        stored, replayed = result
        assert (stored.id, replayed) == (row.id, False)
        assert read(db, row.id) is not None
    assert sorted(queued_job_ids(broker, prefix + "default")) == sorted(str(r.id) for r in good)
    assert sizes[0] == 5, f"the five requests did not share a batch: INSERT sizes {sizes}"
    assert sizes[1:] == [1] * 5  # then one by one


async def test_a_batch_the_broker_refuses_is_rolled_back_and_each_request_gets_dependency_unavailable(
    start_batcher: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    batcher = start_batcher(declared(RefusingBroker(), prefix))
    rows = [new_row(app_id, prefix, key=f"k{i}") for i in range(3)]

    results = await submit_together(batcher, *rows)

    assert all(isinstance(r, DependencyUnavailable) for r in results), results
    assert [read(db, row.id) for row in rows] == [None, None, None]


@pytest.mark.parametrize("refused", [True, False], ids=["original-refused", "original-enqueued"])
async def test_a_replay_of_a_key_in_flight_waits_for_its_original_batch_and_never_gets_a_stale_row(
    start_batcher: Any, db: Engine, app_id: uuid.UUID, prefix: str, refused: bool
) -> None:
    broker = declared(HoldingBroker(refuse_first=refused), prefix)
    batcher = start_batcher(broker)
    original = new_row(app_id, prefix, key="k", payload={"note": "x"})
    replay = new_row(app_id, prefix, key="k", payload={"note": "x"})  # the same request again, as the intake sees it
    other = new_row(app_id, prefix)

    first = batcher.submit(original, None)
    assert await asyncio.to_thread(broker.holding.wait, 30), "the original batch never reached the broker"
    # The original row is committed and its message held: the next batch finds the key taken, and its
    # other job's enqueue lets the held message go (refused or not).
    replay_result, other_result = await submit_together(batcher, replay, other)
    (first_result,) = await asyncio.gather(first, return_exceptions=True)

    assert not isinstance(other_result, BaseException), other_result
    assert other_result[0].id == other.id
    if refused:
        assert isinstance(first_result, DependencyUnavailable)
        assert isinstance(replay_result, DependencyUnavailable)
        assert rows_with_key(db, app_id, "k") == []
        # The client retries: the key is free again and the job is stored and enqueued once.
        stored, replayed = await batcher.submit(new_row(app_id, prefix, key="k", payload={"note": "x"}), None)
        assert not replayed
        assert [r["id"] for r in rows_with_key(db, app_id, "k")] == [stored.id]
    else:
        assert not isinstance(first_result, BaseException), first_result
        assert not isinstance(replay_result, BaseException), replay_result
        assert (replay_result[0].id, replay_result[1]) == (original.id, True)
        assert [r["id"] for r in rows_with_key(db, app_id, "k")] == [original.id]


async def test_a_caller_that_gives_up_mid_batch_leaves_its_batch_mates_answered_and_its_job_stored(
    start_batcher: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    # A handler cancelled while its batch is on its way to the broker (a server shutting down, a client
    # gone with handler cancellation on) must not fail the requests that share the batch.
    broker = declared(HoldingBroker(refuse_first=False), prefix)
    batcher = start_batcher(broker)
    rows = [new_row(app_id, prefix), new_row(app_id, prefix, key="k"), new_row(app_id, prefix)]
    repeat = new_row(app_id, prefix, key="k")  # the same request again, in the same batch
    waiting = [batcher.submit(row, None) for row in [*rows, repeat]]
    assert await asyncio.to_thread(broker.holding.wait, 30), "the batch never reached the broker"

    waiting[1].cancel()  # the second caller gives up while its row is committed and its message held
    await submit_together(batcher, new_row(app_id, prefix))  # the next batch lets the held one go
    first, third, repeated = await asyncio.gather(waiting[0], waiting[2], waiting[3], return_exceptions=True)

    assert not any(isinstance(r, BaseException) for r in (first, third, repeated)), (first, third, repeated)
    assert (first[0].id, third[0].id) == (rows[0].id, rows[2].id)  # type: ignore[index]
    assert (repeated[0].id, repeated[1]) == (rows[1].id, True)  # type: ignore[index]
    assert all(read(db, row.id) is not None for row in rows)  # its job is recorded and sent all the same
    assert str(rows[1].id) in queued_job_ids(broker, prefix + "default")


async def test_identical_requests_with_one_key_in_one_batch_store_one_row_and_the_rest_replay_it(
    start_batcher: Any, monkeypatch: pytest.MonkeyPatch, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    broker = declared(StubBroker(), prefix)
    batcher = start_batcher(broker)
    sizes = insert_sizes(monkeypatch)
    rows = [new_row(app_id, prefix, key="dup", payload={"note": "same"}) for _ in range(5)]

    results = await submit_together(batcher, *rows)

    assert not any(isinstance(r, BaseException) for r in results), results
    answers = [(stored.id, replayed) for stored, replayed in results]  # type: ignore[misc]
    assert answers == [(rows[0].id, False)] + [(rows[0].id, True)] * 4
    assert [r["id"] for r in rows_with_key(db, app_id, "dup")] == [rows[0].id]
    assert queued_job_ids(broker, prefix + "default") == [str(rows[0].id)]
    assert sizes == [1]  # one batch; the repeats never reached the INSERT


async def test_a_different_body_with_a_key_taken_in_the_same_batch_gets_conflict_naming_the_job(
    start_batcher: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    batcher = start_batcher(declared(StubBroker(), prefix))
    first, other = new_row(app_id, prefix, key="k", payload={"note": "a"}), new_row(app_id, prefix, key="k")

    results = await submit_together(batcher, first, other)

    assert not isinstance(results[0], BaseException)
    assert isinstance(results[1], Conflict)
    assert results[1].details == {"job_id": str(first.id)}
    assert [r["id"] for r in rows_with_key(db, app_id, "k")] == [first.id]


async def test_a_request_equal_to_the_stored_one_is_a_replay_even_behind_a_conflicting_one_in_its_batch(
    start_batcher: Any, app_id: uuid.UUID, prefix: str
) -> None:
    batcher = start_batcher(declared(StubBroker(), prefix))
    stored, _ = await batcher.submit(new_row(app_id, prefix, key="k", payload={"note": "a"}), None)

    different, same = new_row(app_id, prefix, key="k"), new_row(app_id, prefix, key="k", payload={"note": "a"})
    results = await submit_together(batcher, different, same)

    assert isinstance(results[0], Conflict)
    assert not isinstance(results[1], BaseException), results[1]
    assert (results[1][0].id, results[1][1]) == (stored.id, True)


async def test_a_connection_lost_between_batches_fails_one_batch_and_the_next_gets_a_fresh_one(
    start_batcher: Any, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    broker = declared(StubBroker(), prefix)
    batcher = start_batcher(broker)
    first = new_row(app_id, prefix)
    assert not isinstance((await submit_together(batcher, first))[0], BaseException)
    held = batcher._inserts._driver
    assert held is not None
    with db.begin() as conn:  # the server drops the batcher's connection (restart, failover, idle timeout)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": held.info.backend_pid})

    lost, retried = new_row(app_id, prefix), new_row(app_id, prefix)
    [lost_result] = await submit_together(batcher, lost)
    [retried_result] = await submit_together(batcher, retried)

    assert isinstance(lost_result, DependencyUnavailable)
    assert read(db, lost.id) is None
    assert not isinstance(retried_result, BaseException), retried_result
    assert read(db, retried.id) is not None
    assert sorted(queued_job_ids(broker, prefix + "default")) == sorted([str(first.id), str(retried.id)])
