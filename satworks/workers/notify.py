"""The notification actors of a worker process, their resources, and the middleware that runs them.

Webhook actors are coroutines on Dramatiq's ``AsyncIO`` event loop (the sender and the async engine
live there and are closed there, by ``NotifyResources`` after the worker's threads stopped); the email
and outbox actors are plain functions on worker threads (``smtplib``, the sync engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO, Middleware
from sqlalchemy.engine import make_url

from satworks.broker.client import BrokerClient, enqueue_many
from satworks.broker.errors import broker_errors
from satworks.broker.messages import Delayed
from satworks.db.engine import async_engine, sync_engine
from satworks.emails.outbox import Composer
from satworks.errors import PermanentError
from satworks.integrations.smtp.client import SmtpConfig
from satworks.integrations.smtp.sessions import SessionCap, slots_key
from satworks.integrations.webhooks.sender import WebhookSender
from satworks.jobs import emails, outbox, webhooks
from satworks.jobs.notify_sweep import SWEEP_ACTOR
from satworks.metrics.notify import NotifyMetrics
from satworks.settings import Settings
from satworks.webhooks.schedule import RetrySchedule
from satworks.webhooks.secrets import SecretBox
from satworks.workers.outbox import OutboxListener


@dataclass(frozen=True)
class Notify:
    webhooks: webhooks.WebhookResources
    emails: emails.EmailResources
    outbox: outbox.OutboxResources


class NotifyResources(Middleware):
    """Closes the webhook resources on the event loop once the worker's threads have stopped."""

    def __init__(self, notify: Notify) -> None:
        self.notify = notify

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop = get_event_loop_thread()
        if loop is not None:
            loop.run_coroutine(self.notify.webhooks.close())
        self.notify.emails.engine.dispose()
        self.notify.outbox.engine.dispose()


def build(settings: Settings, broker: dramatiq.Broker, metrics: NotifyMetrics) -> Notify:
    """The resources (nothing connects yet)."""

    def enqueue(items: Sequence[Delayed]) -> None:
        if items:
            with broker_errors():
                enqueue_many(broker, items)

    composer = Composer(settings)
    box = SecretBox.from_settings(settings)
    hooks = webhooks.WebhookResources(
        settings=settings,
        engine=async_engine(settings.database_url, pool_size=4),
        sender=WebhookSender.from_settings(settings),
        client=BrokerClient(broker, ThreadPoolExecutor(max_workers=1, thread_name_prefix="satworks-notify")),
        box=box,
        schedule=RetrySchedule.from_settings(settings),
        metrics=metrics,
    )
    mail = emails.EmailResources(
        settings=settings,
        engine=sync_engine(settings.database_url, pool_size=2),
        smtp=SmtpConfig.from_settings(settings),
        cap=SessionCap(
            settings.redis_url,
            key=slots_key(settings.queue_prefix),
            limit=settings.smtp_max_sessions,
            ttl_ms=int(emails.lease_s(settings) * 1000),
        ),
        composer=composer,
        schedule=emails.email_schedule(settings),
        enqueue=enqueue,
        metrics=metrics,
    )
    sweeping = outbox.OutboxResources(settings, sync_engine(settings.database_url, pool_size=2), composer, enqueue)
    return Notify(hooks, mail, sweeping)


def middleware(settings: Settings, notify: Notify) -> list[Middleware]:
    """``AsyncIO`` first: its ``after_worker_shutdown`` (run in reverse order) stops the loop last."""
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return [AsyncIO(), NotifyResources(notify), OutboxListener(dsn, lambda: outbox.dispatch(notify.outbox))]


def declare_actors(broker: dramatiq.Broker, notify: Notify) -> None:
    prefix = notify.webhooks.settings.queue_prefix
    hooks, mail, sweeping = notify.webhooks, notify.emails, notify.outbox

    async def pump(endpoint_id: str) -> None:
        await webhooks.pump(hooks, endpoint_id)

    async def deliver(delivery_id: str) -> None:
        await webhooks.deliver(hooks, delivery_id)

    def send(email_id: str) -> None:
        emails.send(mail, email_id)

    def sweep() -> None:
        outbox.sweep(sweeping)

    common: dict[str, Any] = {
        "broker": broker,
        "throws": (PermanentError,),
        "retry_when": _retry_when,
        "max_backoff": 60_000,
    }
    for fn, name, queue, limit_ms in (
        (pump, webhooks.PUMP, webhooks.QUEUE, 300_000),
        (deliver, webhooks.DELIVER, webhooks.QUEUE, 120_000),
        (send, emails.SEND, emails.QUEUE, 600_000),
        (sweep, SWEEP_ACTOR, "default", 300_000),
    ):
        dramatiq.actor(  # type: ignore[call-overload]
            fn, actor_name=name, queue_name=prefix + queue, time_limit=limit_ms, min_backoff=500, **common
        )


def _retry_when(retries: int, exception: BaseException) -> bool:
    """A deliberate ``Retry`` (waiting for a lease or a session slot) always; anything else 20 times."""
    return isinstance(exception, dramatiq.Retry) or retries < 20
