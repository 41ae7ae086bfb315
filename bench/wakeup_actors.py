"""Plain Dramatiq for ``bench/idle_wakeup.py``: Dramatiq's own broker and one probe actor per queue.

Workers: ``dramatiq bench.wakeup_actors --processes 1 --threads 8`` (from the repository root), with
``BENCH_WAKEUP_BROKER_URL`` (``redis://...`` or ``amqp://...``), ``BENCH_WAKEUP_NAMESPACE``,
``BENCH_WAKEUP_PREFIX`` and ``BENCH_WAKEUP_RESULTS_URL`` (a Redis URL) set; with
``BENCH_WAKEUP_SATWORKS_BROKER=1`` the broker is satworks' Redis broker (idle wake-up) instead of
Dramatiq's. The bench sends with :func:`build` from its own process. A probe's first act is to store
how long after its sender's clock reading it started, so the figure is enqueue -> actor start.
"""

from __future__ import annotations

import os
import time
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from satworks.broker.redis import SatworksRedisBroker

QUEUES = ("critical", "default", "bulk")


def results_key(namespace: str) -> str:
    return f"{namespace}:results"


def build(
    url: str, namespace: str, prefix: str, results_url: str, *, satworks_broker: bool = False
) -> tuple[dramatiq.Broker, dict[str, Any]]:
    """The broker and ``{queue: probe actor}``."""
    broker: dramatiq.Broker
    if url.startswith("amqp"):
        broker = RabbitmqBroker(url=url)
    elif satworks_broker:
        broker = SatworksRedisBroker(url=url, namespace=namespace)
    else:
        broker = RedisBroker(url=url, namespace=namespace)  # type: ignore[no-untyped-call]
    results = redis.Redis.from_url(results_url)
    key = results_key(namespace)

    def probe(sample: str, sent_at: float) -> None:
        results.hset(key, sample, time.time() - sent_at)

    probes = {
        queue: dramatiq.actor(broker=broker, actor_name=f"probe_{queue}", queue_name=prefix + queue, max_retries=0)(
            probe
        )
        for queue in QUEUES
    }
    return broker, probes


if "BENCH_WAKEUP_BROKER_URL" in os.environ:  # imported by the dramatiq CLI
    broker, probes = build(
        os.environ["BENCH_WAKEUP_BROKER_URL"],
        os.environ["BENCH_WAKEUP_NAMESPACE"],
        os.environ["BENCH_WAKEUP_PREFIX"],
        os.environ["BENCH_WAKEUP_RESULTS_URL"],
        satworks_broker=os.environ.get("BENCH_WAKEUP_SATWORKS_BROKER") == "1",
    )
    dramatiq.set_broker(broker)
