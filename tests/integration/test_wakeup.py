"""Idle wake-up on a real Redis: an idle consumer is woken by the enqueue, not by its timer.

Consumers driven directly get a ``worker_timeout`` of ten minutes: a test that finishes at all was
woken by a token (the counters say which wake-up each fetch followed). Whole Dramatiq workers use a
short timeout so they stop quickly, and their tests assert on those counters, not on time.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

from satworks.broker import redis as broker_redis
from satworks.broker.client import BrokerClient
from satworks.broker.redis import SatworksRedisBroker
from satworks.broker.wakeup import DUE, IDLE, INTERRUPT, TOKEN, WAKE_TOKENS_MAX, WakeupConsumer, WakeWaiter, wake_key
from tests.support import wait_until

REDIS_URL = os.environ.get("SATWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
NEVER_MS = 600_000  # a worker_timeout no test outlives: finishing proves a token did the waking
QUEUE = "q"


class CountingConnection(redis.Connection):
    """Counts the commands this process sends, by name."""

    sent: Counter[str] = Counter()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent[str(args[0]).upper()] += 1
        super().send_command(*args, **kwargs)


@pytest.fixture
def make_broker(redis_namespace: str) -> Iterator[Callable[..., SatworksRedisBroker]]:
    """Brokers on one namespace: each stands for one worker process (its own broker id)."""
    made: list[SatworksRedisBroker] = []

    def make(**kwargs: Any) -> SatworksRedisBroker:
        broker = SatworksRedisBroker(url=REDIS_URL, namespace=redis_namespace, **kwargs)
        broker.declare_queue(QUEUE)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def broker(make_broker: Callable[..., SatworksRedisBroker]) -> SatworksRedisBroker:
    return make_broker()


def message(queue: str = QUEUE) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=queue, actor_name="noop", args=(), kwargs={}, options={})


class Pulling:
    """``next(consumer)`` ``calls`` times in a thread; ``got`` collects what each call returned."""

    def __init__(self, consumer: WakeupConsumer, calls: int = 2) -> None:
        self.consumer = consumer
        self.got: list[Any] = []
        self.thread = threading.Thread(target=lambda: self.got.extend(next(consumer) for _ in range(calls)))
        self.thread.start()

    def wait_idle(self) -> None:
        wait_until(lambda: self.consumer.idle_since is not None, what="the consumer waiting")

    def join(self) -> list[Any]:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the consumer was not woken"
        return self.got


def consume(
    broker: SatworksRedisBroker, timeout_ms: int = NEVER_MS, queue: str = QUEUE, prefetch: int = 4
) -> WakeupConsumer:
    consumer = broker.consume(queue, prefetch=prefetch, timeout=timeout_ms)
    assert isinstance(consumer, WakeupConsumer)
    return consumer


def enqueue_one(broker: SatworksRedisBroker, how: str) -> dramatiq.Message[Any]:
    sent = message()
    if how == "dramatiq_enqueue":  # retries, payment follow-ups, delayed messages coming due
        return broker.enqueue(sent)
    if how == "enqueue_many":
        broker.enqueue_many([(sent, None)])
    else:  # the intake's path

        async def send() -> None:
            client = BrokerClient(broker, executor=None)  # type: ignore[arg-type]
            try:
                await client.enqueue([(sent, None)])
            finally:
                await client.aclose()

        asyncio.run(send())
    return sent


@pytest.mark.parametrize("how", ["dramatiq_enqueue", "enqueue_many", "intake_async"])
def test_idle_consumer_is_woken_by_each_enqueue_path(broker: SatworksRedisBroker, how: str) -> None:
    consumer = consume(broker)
    pulling = Pulling(consumer)
    pulling.wait_idle()

    sent = enqueue_one(broker, how)

    woken, received = pulling.join()
    assert woken is None
    assert received.message_id == sent.message_id
    assert consumer.wakes == {TOKEN: 1}
    assert consumer.fetched_after == {TOKEN: 1}
    consumer.close()


def test_a_token_pushed_between_the_empty_fetch_and_the_wait_is_not_lost(
    broker: SatworksRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consume(broker)
    wait = consumer._wait_idle
    sent: list[dramatiq.Message[Any]] = []

    def enqueue_then_wait() -> None:  # the fetch found nothing; the message lands before the BLPOP
        if not sent:
            sent.append(broker.enqueue(message()))
        wait()

    monkeypatch.setattr(consumer, "_wait_idle", enqueue_then_wait)

    woken, received = Pulling(consumer).join()
    assert woken is None
    assert received.message_id == sent[0].message_id
    assert consumer.wakes == {TOKEN: 1}
    consumer.close()


def test_an_armed_wait_left_at_its_deadline_still_receives_the_next_token(broker: SatworksRedisBroker) -> None:
    key = wake_key(broker.namespace, QUEUE)
    waiter = WakeWaiter(broker.client.connection_pool, key, key + ".interrupt", stale_after_s=60)
    assert waiter.wait(0.01) is None  # armed, nothing came
    broker.wake(QUEUE, 1)
    assert waiter.wait(30) == TOKEN
    assert waiter.close(broker.client) is None


def test_one_message_wakes_one_of_several_idle_consumers(make_broker: Callable[..., SatworksRedisBroker]) -> None:
    first, second = consume(make_broker()), consume(make_broker())
    pulling = [Pulling(first), Pulling(second)]
    for each in pulling:
        each.wait_idle()

    sender = make_broker()
    sent = [sender.enqueue(message())]
    wait_until(lambda: first.wakes[TOKEN] + second.wakes[TOKEN] >= 1, what="a wake-up")
    wait_until(lambda: any(len(each.got) == 2 for each in pulling), what="the message fetched")
    assert first.wakes[TOKEN] + second.wakes[TOKEN] == 1  # the other one still waits
    assert sum(each.thread.is_alive() for each in pulling) == 1

    sent.append(sender.enqueue(message()))  # wakes the one still waiting
    received = {each.join()[1].message_id for each in pulling}
    assert received == {m.message_id for m in sent}
    assert first.wakes == second.wakes == {TOKEN: 1}
    first.close()
    second.close()


def test_a_consumer_that_gets_busy_ends_its_armed_wait_so_the_next_token_wakes_one_that_waits(
    make_broker: Callable[..., SatworksRedisBroker], redis_namespace: str
) -> None:
    # Prefetch 1: once busy, the first consumer fetches nothing more, so the second message can only
    # reach the second consumer, through its token.
    busy, idle = consume(make_broker(), timeout_ms=200, prefetch=1), consume(make_broker())
    pulling_busy = Pulling(busy, calls=50)
    wait_until(lambda: busy.idle_since is not None, what="the first consumer waiting")  # armed first
    pulling_idle = Pulling(idle)
    pulling_idle.wait_idle()
    plain = RedisBroker(url=REDIS_URL, namespace=redis_namespace)  # type: ignore[no-untyped-call]
    tokenless = plain.enqueue(message())  # found by the first consumer's periodic fetch, armed BLPOP and all
    wait_until(lambda: busy.fetched_after[IDLE] == 1, what="the periodic fetch")

    sent = make_broker().enqueue(message())

    woken, received = pulling_idle.join()
    assert woken is None and received.message_id == sent.message_id
    assert idle.wakes == {TOKEN: 1}
    busy.broker.interrupt_consumers()
    assert [m.message_id for m in pulling_busy.join() if m is not None] == [tokenless.message_id]
    assert busy.wakes[TOKEN] == 0
    plain.close()
    busy.close()
    idle.close()


def test_tokens_are_one_per_message_and_bounded(broker: SatworksRedisBroker) -> None:
    key = wake_key(broker.namespace, QUEUE)
    broker.enqueue_many([(message(), None) for _ in range(3)])
    assert broker.client.llen(key) == 3
    broker.enqueue_many([(message(), None) for _ in range(3 * WAKE_TOKENS_MAX)])
    assert broker.client.llen(key) == WAKE_TOKENS_MAX
    broker.enqueue_many([(message(), 5_000)])  # a delayed message wakes its delay queue's consumers
    assert broker.client.llen(wake_key(broker.namespace, QUEUE + ".DQ")) == 1


def test_tokens_left_by_messages_already_taken_are_dropped_after_one_empty_fetch(
    broker: SatworksRedisBroker,
) -> None:
    key = wake_key(broker.namespace, QUEUE)
    broker.wake(QUEUE, 5)  # as if five messages had come and gone while every consumer was busy
    consumer = consume(broker)
    pulling = Pulling(consumer, calls=3)
    wait_until(lambda: consumer.wakes[TOKEN] == 1 and consumer.idle_since is not None, what="a second wait")
    assert broker.client.llen(key) == 0
    assert consumer.fetched_after == {}
    broker.interrupt_consumers()
    pulling.join()
    consumer.close()


def test_an_idle_consumer_sends_one_fetch_per_worker_timeout_and_its_wait_costs_no_commands(
    redis_namespace: str,
) -> None:
    pool = redis.ConnectionPool.from_url(REDIS_URL, connection_class=CountingConnection)
    broker = SatworksRedisBroker(client=redis.Redis(connection_pool=pool), namespace=redis_namespace)
    broker.declare_queue(QUEUE)
    consumer = consume(broker, timeout_ms=100)
    Pulling(consumer, calls=2).join()  # both connections made (fetches, BLPOP), the BLPOP armed
    CountingConnection.sent.clear()

    assert Pulling(consumer, calls=8).join() == [None] * 8
    assert consumer.wakes == {IDLE: 10}
    assert CountingConnection.sent == {"EVALSHA": 8}  # the fetches; the BLPOP stayed armed throughout
    consumer.close()
    broker.close()


def test_a_message_sent_by_plain_dramatiq_is_found_by_the_periodic_fetch(
    broker: SatworksRedisBroker, redis_namespace: str
) -> None:
    plain = RedisBroker(url=REDIS_URL, namespace=redis_namespace)  # type: ignore[no-untyped-call]
    consumer = consume(broker, timeout_ms=200)
    pulling = Pulling(consumer, calls=10)
    pulling.wait_idle()
    sent = plain.enqueue(message())
    wait_until(lambda: consumer.fetched_after[IDLE] == 1, what="the periodic fetch")
    broker.interrupt_consumers()
    assert [m.message_id for m in pulling.join() if m is not None] == [sent.message_id]
    plain.close()
    consumer.close()


def test_shutdown_interrupts_an_idle_wait(broker: SatworksRedisBroker) -> None:
    consumer = consume(broker)
    pulling = Pulling(consumer, calls=1)
    pulling.wait_idle()
    broker.interrupt_consumers()
    assert pulling.join() == [None]
    assert consumer.wakes == {INTERRUPT: 1}
    assert consumer.stopping
    consumer.close()


def test_a_delay_consumer_wakes_once_at_a_held_eta_and_then_waits_again(broker: SatworksRedisBroker) -> None:
    broker.enqueue_many([(message(), 200)])  # the intake's delayed job, sent before the consumer starts
    consumer = consume(broker, queue=QUEUE + ".DQ")
    # The message (its first fetch); its token, now stale; its eta; then a wait that only the interrupt ends.
    pulling = Pulling(consumer, calls=4)
    wait_until(lambda: consumer.wakes[DUE] == 1 and consumer.idle_since is not None, what="the wait after the eta")
    broker.interrupt_consumers()  # nobody moves the message here, which must not make the consumer spin
    held, *rest = pulling.join()
    assert held.options["eta"] > 0 and rest == [None, None, None]
    assert consumer.wakes == {TOKEN: 1, DUE: 1, INTERRUPT: 1}
    consumer.close()


def test_without_the_known_consumer_internals_consumers_are_dramatiqs_own(
    broker: SatworksRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_redis, "WAKEUP_KNOWN", False)
    consumer = broker.consume(QUEUE, prefetch=1, timeout=100)
    assert type(consumer) is _RedisConsumer
    consumer.close()


# --- whole Dramatiq workers --------------------------------------------------------------------------


@pytest.fixture
def worker_of(make_broker: Callable[..., SatworksRedisBroker]) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(broker: SatworksRedisBroker) -> Worker:
        worker = Worker(broker, worker_threads=2, worker_timeout=2_000)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def consumer_in(worker: Worker, queue: str) -> WakeupConsumer:
    thread = wait_until(lambda: worker.consumers.get(queue), what=f"a consumer thread for {queue}")
    consumer = wait_until(lambda: thread.consumer, what=f"the consumer of {queue}")
    assert isinstance(consumer, WakeupConsumer)
    return consumer


def test_a_delayed_message_wakes_its_delay_consumer_and_runs_once_due(
    make_broker: Callable[..., SatworksRedisBroker], worker_of: Callable[..., Worker]
) -> None:
    broker = make_broker()
    ran: list[str] = []
    actor = dramatiq.actor(queue_name=QUEUE, broker=broker, actor_name="delayed_noop")(lambda tag: ran.append(tag))
    worker = worker_of(broker)
    delayed, ready = consumer_in(worker, QUEUE + ".DQ"), consumer_in(worker, QUEUE)
    wait_until(lambda: delayed.idle_since is not None and ready.idle_since is not None, what="idle consumers")

    # Due well after the token's fetch (a loaded machine can take a few hundred ms over it: a message
    # already due by then is moved without a wake-up) and before the next idle fetch (2 s).
    actor.send_with_options(args=("later",), delay=1_200)

    wait_until(lambda: ran == ["later"], what="the delayed message run")
    # Which wake-up moved it depends on timing under a loaded suite (a slow fetch can find it due): at
    # least the delay consumer was woken for it, not left to its idle fetch alone.
    assert delayed.wakes[TOKEN] + delayed.wakes[DUE] >= 1


def test_a_retry_after_a_failure_runs_on_an_idle_worker(
    make_broker: Callable[..., SatworksRedisBroker], worker_of: Callable[..., Worker]
) -> None:
    broker = make_broker()
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    actor = dramatiq.actor(queue_name=QUEUE, broker=broker, actor_name="flaky", min_backoff=1_000, max_backoff=1_200)(
        flaky
    )
    worker = worker_of(broker)
    delayed = consumer_in(worker, QUEUE + ".DQ")
    wait_until(lambda: delayed.idle_since is not None, what="an idle delay consumer")  # waiting for tokens
    actor.send()
    wait_until(lambda: attempts == [1, 2], what="the retry")
    assert delayed.wakes[TOKEN] >= 1 and delayed.wakes[DUE] >= 1


def test_two_workers_on_one_queue_run_every_message_once(
    make_broker: Callable[..., SatworksRedisBroker], worker_of: Callable[..., Worker]
) -> None:
    runs: Counter[int] = Counter()
    brokers = [make_broker(), make_broker()]
    for each in brokers:
        dramatiq.actor(queue_name=QUEUE, broker=each, actor_name="count")(lambda n: runs.update([n]))
    consumers = [consumer_in(worker_of(each), QUEUE) for each in brokers]
    wait_until(lambda: all(c.idle_since is not None for c in consumers), what="idle consumers")

    sender = make_broker()
    for n in range(20):
        sender.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name="count", args=(n,), kwargs={}, options={}))
        if n % 5 == 4:  # in bursts, with the workers idle in between
            wait_until(lambda n=n: len(runs) == n + 1, what=f"{n + 1} runs")  # type: ignore[misc]

    wait_until(lambda: len(runs) == 20, what="every message run")
    assert set(runs.values()) == {1}
    assert sum(c.wakes[TOKEN] for c in consumers) >= 4  # each burst after a quiet spell woke someone
