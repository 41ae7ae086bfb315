"""Enqueueing from asyncio code (the intake): the Redis broker through an asyncio Redis client, any
other broker through an executor thread (its client is synchronous)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import dramatiq
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from satworks.broker.errors import broker_errors
from satworks.broker.messages import Delayed, payment_message
from satworks.broker.redis import SatworksRedisBroker

BROKER_TIMEOUT_S = 10.0


class BrokerClient:
    """The broker as asyncio code sees it. Every failure raises ``BrokerUnavailable``.

    ``redis``: an asyncio client of the Redis broker's server; by default one is opened from the
    broker's connection settings (plain TCP only; TLS and unix sockets take the executor path) and
    closed by ``aclose``. ``executor`` runs the synchronous calls (other brokers, queue stats).
    """

    def __init__(self, broker: dramatiq.Broker, executor: Executor, *, redis: AsyncRedis | None = None) -> None:
        self.broker = broker
        self.executor = executor
        self._own_redis = redis is None
        self.redis = redis if redis is not None else _async_redis(broker)

    async def enqueue(self, items: Sequence[Delayed]) -> None:
        """Hand ``items`` to the broker: for Redis, one script call for all of them."""
        if not items:
            return
        with broker_errors():
            if self.redis is not None and isinstance(self.broker, SatworksRedisBroker):
                await self.broker.enqueue_many_async(items, self.redis)
            else:
                await asyncio.get_running_loop().run_in_executor(self.executor, enqueue_many, self.broker, items)

    async def aclose(self) -> None:
        if self._own_redis and self.redis is not None:
            await self.redis.aclose()


def enqueue_many(broker: dramatiq.Broker, items: Sequence[Delayed]) -> None:
    """Synchronous enqueue of many messages: one round trip on the Redis broker, one per message else.
    Raises the broker client's own errors (callers use ``broker_errors``)."""
    if isinstance(broker, SatworksRedisBroker):
        broker.enqueue_many(items)
    else:
        for message, delay in items:
            broker.enqueue(message, delay=delay)


def payment_sender(broker: dramatiq.Broker, prefix: str) -> Callable[[str, tuple[Any, ...], int | None], None]:
    """``send(actor, args, delay_ms)`` of payment-actor messages from synchronous code (payment jobs,
    the CLI's sweep); raises ``BrokerUnavailable``."""

    def send(actor: str, args: tuple[Any, ...], delay_ms: int | None) -> None:
        with broker_errors():
            broker.enqueue(payment_message(actor, args, prefix), delay=delay_ms)

    return send


def _async_redis(broker: dramatiq.Broker) -> AsyncRedis | None:
    """An asyncio client for the Redis server of ``broker`` (plain TCP), or ``None``."""
    if not isinstance(broker, SatworksRedisBroker):
        return None
    pool = broker.client.connection_pool
    if pool.connection_class is not redis.Connection:  # TLS, unix socket: the executor path
        return None
    kwargs = pool.connection_kwargs
    return AsyncRedis(
        host=kwargs.get("host", "localhost"),
        port=kwargs.get("port", 6379),
        db=kwargs.get("db", 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        socket_timeout=BROKER_TIMEOUT_S,  # a wedged broker answers 503, it does not hang the intake
        socket_connect_timeout=BROKER_TIMEOUT_S,
        # No silent resend: a call whose answer was lost may have run, and running it again would put
        # every message of the batch in the queue twice. The batch fails (503, rows deleted) instead.
        retry=Retry(NoBackoff(), 0),
    )
