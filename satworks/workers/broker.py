"""Build the Dramatiq broker from settings. The worker entry sets it as Dramatiq's one global."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware, default_middleware

from satworks.jobs.base import QUEUES
from satworks.settings import Settings

Delayed = tuple[dramatiq.Message[Any], int | None]


class SatworksRedisBroker(RedisBroker):
    """Dramatiq's Redis broker plus batched enqueue and on-demand dead-worker recovery."""

    def enqueue_many(self, items: Sequence[Delayed]) -> None:
        """Enqueue many messages in one Redis pipeline (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        dispatch = self.scripts["dispatch"]
        sent = []
        for original, delay in items:
            message = original.copy(options={"redis_message_id": str(uuid.uuid4())})
            queue = message.queue_name
            if delay is not None:
                queue = dq_name(queue)
                message = message.copy(queue_name=queue, options={"eta": _millis() + delay})
            self.emit_before("enqueue", message, delay)
            args = [
                *self._script_args("enqueue", queue, maintenance=False),
                message.options["redis_message_id"],
                message.encode(),
            ]
            dispatch(keys=[self.namespace], args=args, client=pipe)
            sent.append((message, delay))
        pipe.execute()
        for message, delay in sent:
            self.emit_after("enqueue", message, delay)

    def _script_args(self, command: str, queue: str, *, maintenance: bool) -> list[Any]:
        """The fixed arguments of Dramatiq's dispatch script, as ``RedisBroker._dispatch`` sends them."""
        unpack_size = self._max_unpack_size()  # type: ignore[no-untyped-call]
        return [
            command,
            _millis(),
            queue,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            int(maintenance),
            unpack_size,
        ]

    def recover_dead_workers(self) -> None:
        """Heartbeat for this process and requeue unacked messages of workers silent past the timeout.

        Dramatiq runs this maintenance on a random 0.1% of calls; under light traffic a killed
        worker's messages could wait for hours. The reaper thread calls it on a fixed interval.
        The carrier command is ``qsize``, which reads and changes nothing else.
        """
        dispatch = self.scripts["dispatch"]
        pipe = self.client.pipeline(transaction=False)
        for queue in sorted(self.queues | self.delay_queues):
            args = self._script_args("qsize", queue, maintenance=True)
            dispatch(keys=[self.namespace], args=args, client=pipe)
        pipe.execute()


def _millis() -> int:
    return int(time.time() * 1000)


def build_broker(settings: Settings, *, extra_middleware: Sequence[Middleware] = ()) -> dramatiq.Broker:
    """The broker with Dramatiq's default middleware; ``extra_middleware`` goes just before Retries,
    so its ``after_*`` hooks (run in reverse order) see the retry decision already made."""
    middleware = [m() for m in default_middleware]
    retries_at = next(i for i, m in enumerate(middleware) if type(m).__name__ == "Retries")
    middleware[retries_at:retries_at] = list(extra_middleware)
    broker: dramatiq.Broker
    if settings.broker_kind == "rabbitmq":
        broker = RabbitmqBroker(url=settings.effective_broker_url, middleware=middleware)
    else:
        broker = SatworksRedisBroker(  # type: ignore[no-untyped-call]
            url=settings.effective_broker_url,
            namespace="satworks",
            middleware=middleware,
            heartbeat_timeout=settings.heartbeat_timeout_ms,
        )
    for queue in QUEUES:
        broker.declare_queue(settings.queue_prefix + queue)
    return broker


def enqueue_many(broker: dramatiq.Broker, items: Sequence[Delayed]) -> None:
    if isinstance(broker, SatworksRedisBroker):
        broker.enqueue_many(items)
    else:
        for message, delay in items:
            broker.enqueue(message, delay=delay)


def job_message(
    job_id: uuid.UUID, job_type: str, queue: str, max_retries: int, *, delay_ms: int | None = None, max_age_ms: int
) -> dramatiq.Message[Any]:
    """Messages carry the job id only; the worker reads the payload when it claims the job.

    Dramatiq's age limit counts from the message's creation, so a delayed job's limit is extended by
    its delay: the age that matters is the time since the job became due.
    """
    return dramatiq.Message(
        queue_name=queue,
        actor_name=job_type,
        args=(str(job_id),),
        kwargs={},
        options={"max_retries": max_retries, "max_age": max_age_ms + (delay_ms or 0)},
    )
