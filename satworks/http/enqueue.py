"""Handing internal messages to the broker from a request, off the event loop (the broker client is sync)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from satworks.errors import DependencyUnavailable
from satworks.http import context as ctx
from satworks.jobs.payments import payment_message
from satworks.workers.broker import enqueue_many


async def enqueue_payment_actor(app: web.Application, actor: str, args: tuple[Any, ...]) -> None:
    """Send one payment-actor message; raises ``DependencyUnavailable`` when the broker refuses it."""
    message = payment_message(actor, args, app[ctx.SETTINGS].queue_prefix)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(app[ctx.EXECUTOR], enqueue_many, app[ctx.BROKER], [(message, None)])
    except Exception as exc:  # any broker failure is the same answer to the caller
        raise DependencyUnavailable("broker unavailable", details={"dependency": "broker"}) from exc
