"""Queue depths read from the broker: ready, delayed and dead-lettered messages per queue."""

from __future__ import annotations

import asyncio

from dramatiq.brokers.rabbitmq import RabbitmqBroker

from satworks.broker.client import BrokerClient
from satworks.broker.errors import broker_errors
from satworks.broker.redis import SatworksRedisBroker
from satworks.jobs.base import QUEUES

Depths = dict[str, dict[str, int]]
_STATES = ("ready", "delayed", "dead_letter")


class QueueStats:
    """Read through the intake's ``BrokerClient``; every failure raises ``BrokerUnavailable``."""

    def __init__(self, client: BrokerClient, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def depths(self) -> Depths:
        """``{"critical": {"ready": n, "delayed": n, "dead_letter": n}, ...}``."""
        broker = self._client.broker
        with broker_errors():
            if isinstance(broker, SatworksRedisBroker) and self._client.redis is not None:
                return await self._redis_depths(broker.namespace)
            loop = asyncio.get_running_loop()
            if isinstance(broker, SatworksRedisBroker):
                return await loop.run_in_executor(self._client.executor, self._redis_depths_sync, broker)
            return await loop.run_in_executor(self._client.executor, self._rabbit_depths)

    async def ping(self) -> None:
        await self.depths()

    def _redis_commands(self, ns: str) -> list[tuple[str, str]]:
        """Per queue: the length of its ready list, its delayed messages' hash, its dead-letter set."""
        commands = []
        for queue in QUEUES:
            name = f"{ns}:{self._prefix}{queue}"
            commands += [("LLEN", name), ("HLEN", f"{name}.DQ.msgs"), ("ZCARD", f"{name}.XQ")]
        return commands

    async def _redis_depths(self, ns: str) -> Depths:
        assert self._client.redis is not None
        async with self._client.redis.pipeline(transaction=False) as pipe:
            for command, key in self._redis_commands(ns):
                pipe.execute_command(command, key)
            return self._by_queue(await pipe.execute())

    def _redis_depths_sync(self, broker: SatworksRedisBroker) -> Depths:
        """For a Redis broker without an asyncio client (TLS, unix socket), in the executor."""
        pipe = broker.client.pipeline(transaction=False)
        for command, key in self._redis_commands(broker.namespace):
            pipe.execute_command(command, key)
        return self._by_queue(pipe.execute())

    def _rabbit_depths(self) -> Depths:
        broker = self._client.broker
        assert isinstance(broker, RabbitmqBroker)
        channel = broker.channel
        counts = []
        for queue in QUEUES:
            for suffix in ("", ".DQ", ".XQ"):
                counts.append(channel.queue_declare(self._prefix + queue + suffix, passive=True).method.message_count)
        return self._by_queue(counts)

    @staticmethod
    def _by_queue(counts: list[int]) -> Depths:
        return {queue: dict(zip(_STATES, counts[3 * i : 3 * i + 3], strict=True)) for i, queue in enumerate(QUEUES)}
