"""Baseline: plain Dramatiq with a no-op actor, on Redis (own namespace) or RabbitMQ (own queue).

Workers: ``dramatiq bench.raw_dramatiq --processes 2 --threads 8`` (from the repository root), with
``BENCH_RAW_BROKER_URL`` (``redis://...`` or ``amqp://...``; ``BENCH_RAW_REDIS_URL`` is the older
name) and ``BENCH_RAW_QUEUE`` set. The harness builds its own :class:`RawBench` on the same broker,
enqueues messages up front with :meth:`RawBench.enqueue_many` and times the drain by polling
:meth:`RawBench.pending`, so the actor itself does no extra I/O.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

REDIS_URL = "redis://127.0.0.1:6379/14"
NAMESPACE = "bench_raw"
QUEUE = "raw_default"


def noop() -> None:
    """Does nothing: what is left is Dramatiq's own cost per message."""


class RawBench:
    """Dramatiq's own broker for ``url`` and one actor on ``queue``: the no-op, unless ``fn`` is given
    (with ``middleware`` added to the broker before the actor is declared)."""

    def __init__(
        self,
        url: str,
        queue: str = QUEUE,
        *,
        fn: Callable[..., None] = noop,
        middleware: Sequence[dramatiq.Middleware] = (),
    ) -> None:
        self.url = url
        self.queue = queue
        self.rabbit = url.startswith(("amqp://", "amqps://"))
        self.broker: dramatiq.Broker = (
            RabbitmqBroker(url=url) if self.rabbit else RedisBroker(url=url, namespace=NAMESPACE)  # type: ignore[no-untyped-call]
        )
        for mw in middleware:
            self.broker.add_middleware(mw)
        self.actor = dramatiq.actor(broker=self.broker, actor_name=fn.__name__, queue_name=queue)(fn)

    def enqueue_many(self, n: int, *, chunk: int = 1000) -> None:
        """Enqueue ``n`` messages without arguments (see ``enqueue``)."""
        self.enqueue([()] * n, chunk=chunk)

    def enqueue(self, args: Sequence[tuple[Any, ...]], *, chunk: int = 1000) -> None:
        """Enqueue one message per item of ``args``: on Redis with the broker's own enqueue script,
        ``chunk`` per pipeline; on RabbitMQ one publish each (Dramatiq's own enqueue)."""
        if self.rabbit:
            for a in args:
                self.broker.enqueue(self.actor.message(*a))
            return
        assert isinstance(self.broker, RedisBroker)
        dispatch = self.broker.scripts["dispatch"]
        max_unpack = self.broker._max_unpack_size()  # type: ignore[no-untyped-call]
        for start in range(0, len(args), chunk):
            pipe = self.broker.client.pipeline(transaction=False)
            for a in args[start : start + chunk]:
                message = self.actor.message(*a).copy(options={"redis_message_id": os.urandom(16).hex()})
                script_args = [
                    "enqueue",
                    int(time.time() * 1000),
                    self.queue,
                    self.broker.broker_id,
                    self.broker.heartbeat_timeout,
                    self.broker.dead_message_ttl,
                    0,
                    max_unpack,
                    message.options["redis_message_id"],
                    message.encode(),
                ]
                dispatch(keys=[NAMESPACE], args=script_args, client=pipe)
            pipe.execute()

    def pending(self) -> int:
        """Redis: messages enqueued and not yet acked (queued, prefetched or running). RabbitMQ: messages
        ready (not yet delivered); the few delivered and not yet acked are not counted, but go back to
        the queue when the worker stops, so a count of 0 after it stopped means all were acked."""
        if self.rabbit:
            assert isinstance(self.broker, RabbitmqBroker)
            declared = self.broker.channel.queue_declare(self.queue, durable=True, passive=True)
            return int(declared.method.message_count)
        assert isinstance(self.broker, RedisBroker)
        return int(self.broker.client.hlen(f"{NAMESPACE}:{self.queue}.msgs"))

    def delete(self) -> None:
        """RabbitMQ: delete the queue and its delay and dead-letter queues (this bench's own names)."""
        if not self.rabbit:
            return
        assert isinstance(self.broker, RabbitmqBroker)
        for name in (self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ"):
            with contextlib.suppress(Exception):  # never declared: nothing to delete
                self.broker.channel.queue_delete(name)

    def close(self) -> None:
        self.broker.close()


# Imported by the dramatiq CLI: the broker and actor the worker runs.
bench = RawBench(
    os.environ.get("BENCH_RAW_BROKER_URL") or os.environ.get("BENCH_RAW_REDIS_URL", REDIS_URL),
    os.environ.get("BENCH_RAW_QUEUE", QUEUE),
)
dramatiq.set_broker(bench.broker)
