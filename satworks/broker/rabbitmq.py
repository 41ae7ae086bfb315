"""Dramatiq's RabbitMQ broker, whose consumers let a middleware defer a message's ack (``ACK_AFTER``).

pika's channel is not thread-safe, but Dramatiq's consumer already acks through
``add_callback_threadsafe``, so the deferred ack may run on any thread. A tag whose connection is gone
by then is refused (Dramatiq logs it) and RabbitMQ redelivers the message, as after any connection loss.

A message holds its place in the channel's window (``basic.qos`` prefetch) until its ack reaches
RabbitMQ. Deferred, that is after its outcome's commit, a few milliseconds after it ran, so a window
of Dramatiq's size (2 per worker thread) filled with messages that had run, and the drain was bound by
that round trip (0.29 of raw Dramatiq on RabbitMQ). The window is therefore twice Dramatiq's: its
``prefetch`` for messages waiting to run, as many again for those whose ack waits, as the Redis
consumer frees a message's place once it ran (``wakeup.WakeupConsumer._settle``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer

from satworks.broker.hooks import HookedOnly
from satworks.broker.messages import ACK_AFTER

MAX_PREFETCH = 65_535
"""AMQP's prefetch count is a 16-bit field (Dramatiq caps its own at the same)."""


def deferring_window(prefetch: int) -> int:
    """The channel's prefetch for a consumer Dramatiq asked to hold ``prefetch`` messages (module docstring)."""
    return min(2 * prefetch, MAX_PREFETCH)


class DeferringRabbitmqConsumer(_RabbitmqConsumer):
    def __init__(self, broker: RabbitmqBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, deferring_window(prefetch), timeout)  # type: ignore[no-untyped-call]

    def ack(self, message: dramatiq.MessageProxy) -> None:
        self._settle(message, super().ack)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        self._settle(message, super().nack)

    def _settle(self, message: dramatiq.MessageProxy, settle: Callable[[dramatiq.MessageProxy], None]) -> None:
        after = getattr(message, ACK_AFTER, None)
        if after is None:
            settle(message)
        else:
            after(lambda: settle(message))


class SatworksRabbitmqBroker(HookedOnly, RabbitmqBroker):
    #: Whether its consumers honour a message's ``ACK_AFTER`` (``satworks.broker.messages``).
    defers_acks = True

    @property
    def consumer_class(self) -> type[Any]:
        return DeferringRabbitmqConsumer
