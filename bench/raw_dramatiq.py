"""Baseline B: plain Dramatiq with a no-op actor on the bench Redis (DB 14), own namespace.

Workers: ``dramatiq bench.raw_dramatiq --processes 2 --threads 8`` (from the repository root).
The harness enqueues messages up front with :func:`enqueue_many` and times the drain by polling
:func:`pending` (the broker's message hash, emptied as messages are acked), so the actor itself
does no extra I/O.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

REDIS_URL = os.environ.get("BENCH_RAW_REDIS_URL", "redis://127.0.0.1:6379/14")
NAMESPACE = "bench_raw"
QUEUE = "raw_default"

broker = RedisBroker(url=REDIS_URL, namespace=NAMESPACE)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE)
def noop() -> None:
    """Does nothing: what is left is Dramatiq's own cost per message."""


def enqueue_many(n: int, *, chunk: int = 1000) -> None:
    """Enqueue ``n`` no-op messages with the broker's own enqueue script, ``chunk`` per pipeline."""
    dispatch = broker.scripts["dispatch"]
    max_unpack = broker._max_unpack_size()  # type: ignore[no-untyped-call]
    left = n
    while left > 0:
        pipe = broker.client.pipeline(transaction=False)
        for _ in range(min(chunk, left)):
            message = noop.message().copy(options={"redis_message_id": os.urandom(16).hex()})
            args = [
                "enqueue",
                int(time.time() * 1000),
                QUEUE,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                0,
                max_unpack,
                message.options["redis_message_id"],
                message.encode(),
            ]
            dispatch(keys=[NAMESPACE], args=args, client=pipe)
        pipe.execute()
        left -= chunk


def pending() -> int:
    """Messages enqueued and not yet acked (queued, prefetched or running)."""
    return int(broker.client.hlen(f"{NAMESPACE}:{QUEUE}.msgs"))
