"""Handing internal messages to the broker from a request."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from satworks.broker.messages import payment_message
from satworks.http import context as ctx


async def enqueue_payment_actor(app: web.Application, actor: str, args: tuple[Any, ...]) -> None:
    """Send one payment-actor message; raises ``BrokerUnavailable`` when the broker refuses it."""
    message = payment_message(actor, args, app[ctx.SETTINGS].queue_prefix)
    await app[ctx.BROKER_CLIENT].enqueue([(message, None)])
