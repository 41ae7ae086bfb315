"""Deferred acks sent together (``ACK_MANY``) leave Redis exactly as Dramatiq's own ack of each
message would."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from satworks.broker.messages import ACK_AFTER
from satworks.broker.redis import SatworksRedisBroker
from satworks.broker.wakeup import Settle
from tests.support import wait_until

REDIS_URL = os.environ.get("SATWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def fetch_and_hold(broker: SatworksRedisBroker, queue: str, n: int) -> tuple[Any, list[Settle]]:
    """``n`` messages enqueued on ``queue``, fetched, and acked by the consumer: each ack held back."""
    broker.declare_queue(queue)
    for i in range(n):
        broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(i,), kwargs={}, options={}))
    consumer = broker.consume(queue, prefetch=n, timeout=1_000)
    held: list[Settle] = []
    for _ in range(n):
        message = wait_until(lambda: next(consumer), what="a message fetched")
        setattr(message, ACK_AFTER, held.append)
        consumer.ack(message)
    return consumer, held


def labels(client: redis.Redis, broker: SatworksRedisBroker) -> dict[bytes, str]:
    """Each stored message's Redis id -> its queue and arguments, the same in both namespaces."""
    found: dict[bytes, str] = {}
    for queue in ("q", "r"):
        for message_id, data in client.hgetall(f"{broker.namespace}:{queue}.msgs").items():
            found[message_id] = f"{queue}{dramatiq.Message.decode(data).args}"
    return found


def state(client: redis.Redis, broker: SatworksRedisBroker, label: dict[bytes, str]) -> dict[str, Any]:
    """Every key of the broker's namespace with its contents, named without the namespace and broker
    id, message ids as ``label`` names them (heartbeat scores are times, so only their members count)."""
    found: dict[str, Any] = {}
    for raw in client.scan_iter(f"{broker.namespace}:*"):
        key = raw.decode()
        kind = client.type(key).decode()
        if kind == "hash":
            value: Any = sorted(label.get(k, k) for k in client.hkeys(key))
        elif kind == "set":
            value = sorted(label.get(k, k) for k in client.smembers(key))
        elif kind == "zset":
            value = sorted(client.zrange(key, 0, -1))
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        else:
            value = client.get(key)
        name = key.removeprefix(broker.namespace).replace(broker.broker_id, "<broker>")
        found[name] = value
    heartbeats = found.get(":__heartbeats__")
    if heartbeats is not None:
        found[":__heartbeats__"] = [m.decode().replace(broker.broker_id, "<broker>") for m in heartbeats]
    return found


def test_acks_sent_together_remove_what_dramatiqs_own_acks_remove(redis_namespaces: Callable[[], str]) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    ours = SatworksRedisBroker(url=REDIS_URL, namespace=redis_namespaces())
    dramatiqs = SatworksRedisBroker(url=REDIS_URL, namespace=redis_namespaces())
    consumers = []
    try:
        # The same messages in each namespace: three on one queue, two on another; one of each left unacked.
        held_ours: list[Settle] = []
        held_dramatiqs: list[Settle] = []
        for broker, held in ((ours, held_ours), (dramatiqs, held_dramatiqs)):
            for queue, n in (("q", 3), ("r", 2)):
                consumer, acks = fetch_and_hold(broker, queue, n)
                consumers.append(consumer)
                held += acks[:-1]
        assert len(held_ours) == len(held_dramatiqs) == 3
        label = labels(client, ours) | labels(client, dramatiqs)
        before = state(client, ours, label)
        assert before == state(client, dramatiqs, label)

        ours.ack_all(held_ours)
        for settle in held_dramatiqs:
            settle()  # Dramatiq's own ack: its dispatch script, one message per call

        after = state(client, ours, label)
        assert after == state(client, dramatiqs, label)
        assert after != before
        assert len(after[":__acks__.<broker>.q"]) == 1 and len(after[":__acks__.<broker>.r"]) == 1
        assert len(after[":q.msgs"]) == 1 and len(after[":r.msgs"]) == 1
    finally:
        for consumer in consumers:
            consumer.close()
        ours.close()
        dramatiqs.close()
        client.close()


def test_an_ack_of_a_message_already_requeued_removes_nothing(redis_namespace: str) -> None:
    """A message no longer in the worker's ack set (requeued after the worker was taken for dead)
    keeps its data: the worker that fetches it next acks it."""
    client = redis.Redis.from_url(REDIS_URL)
    broker = SatworksRedisBroker(url=REDIS_URL, namespace=redis_namespace)
    consumer, held = fetch_and_hold(broker, "q", 1)
    try:
        client.delete(f"{broker.namespace}:__acks__.{broker.broker_id}.q")

        broker.ack_all(held)

        assert client.hlen(f"{broker.namespace}:q.msgs") == 1
    finally:
        consumer.close()
        broker.close()
        client.close()
