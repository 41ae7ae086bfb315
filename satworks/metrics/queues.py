"""Queue depths read from the broker: ready, delayed and dead-lettered messages per queue."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from pika.exceptions import AMQPError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from satworks.errors import DependencyUnavailable
from satworks.jobs.base import QUEUES
from satworks.workers.broker import SatworksRedisBroker

Depths = dict[str, dict[str, int]]


class QueueStats:
    def __init__(self, broker: dramatiq.Broker, redis: Redis | None, executor: Executor, *, prefix: str) -> None:
        self._broker = broker
        self._redis = redis
        self._executor = executor
        self._prefix = prefix

    async def depths(self) -> Depths:
        """``{"critical": {"ready": n, "delayed": n, "dead_letter": n}, ...}``."""
        try:
            if isinstance(self._broker, SatworksRedisBroker) and self._redis is not None:
                return await self._redis_depths(self._broker.namespace)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._rabbit_depths)
        except (RedisError, OSError, AMQPError) as exc:
            raise DependencyUnavailable("broker unavailable", details={"dependency": "broker"}) from exc

    async def ping(self) -> None:
        await self.depths()

    async def _redis_depths(self, ns: str) -> Depths:
        assert self._redis is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                name = f"{ns}:{self._prefix}{queue}"
                pipe.llen(name)
                pipe.hlen(f"{name}.DQ.msgs")
                pipe.zcard(f"{name}.XQ")
            counts = await pipe.execute()
        return {
            queue: {"ready": counts[3 * i], "delayed": counts[3 * i + 1], "dead_letter": counts[3 * i + 2]}
            for i, queue in enumerate(QUEUES)
        }

    def _rabbit_depths(self) -> Depths:
        assert isinstance(self._broker, RabbitmqBroker)
        channel = self._broker.channel
        result: Depths = {}
        for queue in QUEUES:
            name = self._prefix + queue
            counts = {}
            for state, suffix in (("ready", ""), ("delayed", ".DQ"), ("dead_letter", ".XQ")):
                frame = channel.queue_declare(name + suffix, passive=True)
                counts[state] = frame.method.message_count
            result[queue] = counts
        return result
