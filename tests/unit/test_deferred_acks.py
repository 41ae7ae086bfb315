"""Deferred acks, in process: an ack runs only once its outcome's write is done, in the order handed over,
after a failed write has been written again, and a lost broker's refusal is retried. Then on a real Redis
and Postgres: a job's message stays unacknowledged until its outcome is committed."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis
from dramatiq import Worker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import default_middleware
from sqlalchemy import Engine, select

from satworks.broker.messages import ACK_AFTER, job_message
from satworks.broker.redis import SatworksRedisBroker
from satworks.db.engine import sync_engine
from satworks.db.schema import jobs
from satworks.errors import DependencyUnavailable
from satworks.jobs import canary
from satworks.jobs.base import QUEUES, JobContext, JobType
from satworks.jobs.status import JobStatus
from satworks.settings import Settings
from satworks.workers.acks import DeferredAcks
from satworks.workers.actors import declare_actors
from satworks.workers.middleware.tracking import JobTracking
from satworks.workers.pending import Pending
from satworks.workers.status import Outcome, StatusWriter
from tests.support import wait_until
from tests.unit.job_rows import new_row, read, store


class Log:
    """What happened, in order, from any thread."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)

    def ack(self, name: str) -> Callable[[], None]:
        return lambda: self.add(f"ack {name}")


def outcome() -> Outcome:
    return Outcome(uuid.uuid4(), JobStatus.SUCCEEDED, result={})


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def acks(log: Log) -> Iterator[DeferredAcks]:
    deferred = DeferredAcks(lambda o: log.add(f"rewrite {o.job_id}"), retry_s=0.01)
    deferred.start()
    yield deferred
    deferred.stop(timeout_s=5)


def test_an_ack_runs_only_once_its_outcome_is_written(acks: DeferredAcks, log: Log) -> None:
    written: Pending[None] = Pending()
    acks.after(outcome(), written)(log.ack("a"))

    assert log.events == []  # nothing can ack before the write is done
    written.set_result(None)
    wait_until(lambda: log.events == ["ack a"], what="the ack after the write")


def test_acks_keep_the_order_they_were_handed_over_in(acks: DeferredAcks, log: Log) -> None:
    first: Pending[None] = Pending()
    second: Pending[None] = Pending()
    acks.after(outcome(), first)(log.ack("first"))
    acks.after(outcome(), second)(log.ack("second"))

    second.set_result(None)
    first.set_result(None)

    wait_until(lambda: log.events == ["ack first", "ack second"], what="both acks, in order")


def test_a_failed_write_is_written_again_before_the_ack(acks: DeferredAcks, log: Log) -> None:
    lost = outcome()
    written: Pending[None] = Pending()
    written.set_exception(DependencyUnavailable("database unavailable"))

    acks.after(lost, written)(log.ack("a"))

    wait_until(lambda: log.events == [f"rewrite {lost.job_id}", "ack a"], what="the rewrite, then the ack")


def test_an_outcome_that_cannot_be_written_is_reported_and_its_message_still_acked(
    log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    def rewrite(o: Outcome) -> None:
        raise ValueError("refused")

    acks = DeferredAcks(rewrite)
    acks.start()
    written: Pending[None] = Pending()
    written.set_exception(ValueError("refused"))
    with caplog.at_level(logging.ERROR, logger="satworks.workers.acks"):
        acks.after(outcome(), written)(log.ack("a"))
        acks.stop(timeout_s=5)

    assert log.events == ["ack a"]
    assert [r.__dict__.get("action") for r in caplog.records] == ["outcome_lost"]


def test_an_ack_refused_by_a_lost_broker_is_retried_until_it_goes_through(acks: DeferredAcks, log: Log) -> None:
    refusals = iter([ConnectionClosed(OSError("gone")), ConnectionClosed(OSError("gone"))])

    def flaky_ack() -> None:
        refusal = next(refusals, None)
        if refusal is not None:
            log.add("refused")
            raise refusal
        log.add("ack a")

    written: Pending[None] = Pending()
    written.set_result(None)
    acks.after(outcome(), written)(flaky_ack)

    wait_until(lambda: log.events == ["refused", "refused", "ack a"], what="the ack after two refusals")


def test_stop_acks_everything_handed_over_first(log: Log) -> None:
    acks = DeferredAcks(lambda o: None)
    acks.start()
    pending = [Pending[None]() for _ in range(50)]
    for i, written in enumerate(pending):
        acks.after(outcome(), written)(log.ack(str(i)))
    threading.Thread(target=lambda: [w.set_result(None) for w in pending]).start()

    acks.stop(timeout_s=10)

    assert log.events == [f"ack {i}" for i in range(50)]


def test_acks_waiting_together_reach_the_broker_in_one_call(log: Log) -> None:
    batches: list[int] = []

    def ack_all(acks: list[Callable[[], None]]) -> None:
        batches.append(len(acks))
        for ack in acks:
            ack()

    acks = DeferredAcks(lambda o: None)
    for i in range(5):  # all handed over before the thread starts: one batch
        written: Pending[None] = Pending()
        written.set_result(None)
        acks.after(outcome(), written)(log.ack(str(i)))
    acks.start(ack_all)
    acks.stop(timeout_s=5)

    assert batches == [5]
    assert log.events == [f"ack {i}" for i in range(5)]


# --- on a real Redis and Postgres ----------------------------------------------------------------------


@pytest.fixture
def namespace(base_settings: Settings) -> Iterator[str]:
    ns = f"da{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(base_settings.redis_url)
    keys = list(client.scan_iter(f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def unacked(base_settings: Settings, namespace: str) -> set[str]:
    """Redis message ids some consumer of ``namespace`` fetched and has not acknowledged."""
    client = redis.Redis.from_url(base_settings.redis_url, decode_responses=True)
    try:
        return {m for key in client.scan_iter(f"{namespace}:__acks__.*") for m in client.smembers(key)}
    finally:
        client.close()


def test_a_deferred_ack_frees_the_prefetch_place_at_once_and_reaches_redis_when_it_runs(
    base_settings: Settings, namespace: str
) -> None:
    broker = SatworksRedisBroker(url=base_settings.redis_url, namespace=namespace)
    broker.declare_queue("q")
    try:
        sent = broker.enqueue(dramatiq.Message(queue_name="q", actor_name="a", args=(), kwargs={}, options={}))
        consumer = broker.consume("q", prefetch=1, timeout=1_000)
        fetched = wait_until(lambda: next(consumer), what="the message fetched")
        held: list[Callable[[], None]] = []
        setattr(fetched, ACK_AFTER, held.append)

        consumer.ack(fetched)

        assert consumer.outstanding_message_count == 0  # the next fetch may take its place
        assert unacked(base_settings, namespace) == {sent.options["redis_message_id"]}
        (ack,) = held
        ack()
        assert unacked(base_settings, namespace) == set()
        consumer.close()
    finally:
        broker.close()


def test_deferred_acks_and_nacks_reach_redis_together(base_settings: Settings, namespace: str) -> None:
    broker = SatworksRedisBroker(url=base_settings.redis_url, namespace=namespace)
    broker.declare_queue("q")
    client = redis.Redis.from_url(base_settings.redis_url, decode_responses=True)
    try:
        for _ in range(3):
            broker.enqueue(dramatiq.Message(queue_name="q", actor_name="a", args=(), kwargs={}, options={}))
        consumer = broker.consume("q", prefetch=3, timeout=1_000)
        fetched = [wait_until(lambda: next(consumer), what="a message fetched") for _ in range(3)]
        held: list[Callable[[], None]] = []
        for message in fetched:
            setattr(message, ACK_AFTER, held.append)
        consumer.ack(fetched[0])
        consumer.ack(fetched[1])
        consumer.nack(fetched[2])
        assert len(unacked(base_settings, namespace)) == 3

        broker.ack_all(held)

        assert unacked(base_settings, namespace) == set()
        ids = [m.options["redis_message_id"] for m in fetched]
        assert client.zrange(f"{namespace}:q.XQ", 0, -1) == [ids[2]]  # the nacked one, dead-lettered
        assert client.hkeys(f"{namespace}:q.msgs") == []
        consumer.close()
    finally:
        client.close()
        broker.close()


def test_a_job_message_is_acknowledged_only_once_its_outcome_is_committed(
    base_settings: Settings, namespace: str, db: Engine, app_id: uuid.UUID, prefix: str
) -> None:
    go = threading.Event()

    def gated(ctx: JobContext, payload: canary.CanaryPayload) -> dict[str, object]:
        go.wait(30)
        return {"ran": True}

    types = {"canary": JobType(name="canary", payload=canary.CanaryPayload, run=gated)}  # type: ignore[arg-type]
    engine = sync_engine(base_settings.database_url, pool_size=2)
    tracking = JobTracking(StatusWriter(engine, batch_max=64), max_crashes=3, tracked=frozenset(types), patience_s=0)
    middleware = [m() for m in default_middleware]  # as build_broker: tracking just before Retries
    middleware.insert(next(i for i, m in enumerate(middleware) if type(m).__name__ == "Retries"), tracking)
    broker = SatworksRedisBroker(url=base_settings.redis_url, namespace=namespace, middleware=middleware)
    for queue in QUEUES:
        broker.declare_queue(prefix + queue)
    declare_actors(broker, types, tracking, base_settings.model_copy(update={"queue_prefix": prefix}))
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        row = new_row(app_id, prefix)
        store(db, row)
        broker.enqueue(job_message(row.id, row.type, row.queue, row.max_retries, max_age_ms=60_000))
        wait_until(lambda: (read(db, row.id) or {}).get("status") == "running", what="the job claimed")

        with db.connect() as locker:  # holds the job's row: the outcome's write waits for it
            locker.execute(select(jobs.c.id).where(jobs.c.id == row.id).with_for_update())
            go.set()
            worker.join()  # the worker thread is done with the message: run, outcome handed over

            assert (read(db, row.id) or {}).get("status") == "running"
            assert len(unacked(base_settings, namespace)) == 1  # the message is still this worker's
            locker.rollback()

        wait_until(lambda: (read(db, row.id) or {}).get("status") == "succeeded", what="the outcome committed")
        wait_until(lambda: unacked(base_settings, namespace) == set(), what="the message acknowledged")
    finally:
        worker.stop()
        engine.dispose()
