"""Dramatiq's RabbitMQ broker, whose consumers let a middleware defer a message's ack (``ACK_AFTER``).

pika's channel is not thread-safe, but Dramatiq's consumer already acks through
``add_callback_threadsafe``, so the deferred ack may run on any thread. A tag whose connection is gone
by then is refused (Dramatiq logs it) and RabbitMQ redelivers the message, as after any connection loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer

from satworks.broker.hooks import HookedOnly
from satworks.broker.messages import ACK_AFTER


class DeferringRabbitmqConsumer(_RabbitmqConsumer):
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
