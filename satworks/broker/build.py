"""Build the Dramatiq broker from settings. The worker entry sets it as Dramatiq's one global."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
from dramatiq.middleware import Middleware, default_middleware

from satworks.broker.redis import SatworksRedisBroker
from satworks.jobs.base import QUEUES
from satworks.settings import Settings


def build_broker(settings: Settings, *, extra_middleware: Sequence[Middleware] = ()) -> dramatiq.Broker:
    """The broker with Dramatiq's default middleware; ``extra_middleware`` goes just before Retries,
    so its ``after_*`` hooks (run in reverse order) see the retry decision already made.

    Nothing connects here: Redis and RabbitMQ are reached on first use."""
    middleware = [m() for m in default_middleware]
    retries_at = next(i for i, m in enumerate(middleware) if type(m).__name__ == "Retries")
    middleware[retries_at:retries_at] = list(extra_middleware)
    broker: dramatiq.Broker
    if settings.broker_kind == "rabbitmq":
        from satworks.broker.rabbitmq import SatworksRabbitmqBroker  # pika only where it is used

        broker = SatworksRabbitmqBroker(url=settings.effective_broker_url, middleware=middleware)
    else:
        broker = SatworksRedisBroker(
            url=settings.effective_broker_url,
            namespace="satworks",
            middleware=middleware,
            heartbeat_timeout=settings.heartbeat_timeout_ms,
        )
    for queue in QUEUES:
        broker.declare_queue(settings.queue_prefix + queue)
    return broker
