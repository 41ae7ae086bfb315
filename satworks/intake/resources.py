"""The intake opened from settings: database, broker, the job batcher, the payment and draw intakes.

The web process holds one for its lifetime; ``satworks enqueue`` opens one for a single job, so both
submit through the very same code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.build import build_broker
from satworks.broker.client import BrokerClient
from satworks.db.engine import async_engine
from satworks.db.jobs import NewJob
from satworks.emails.outbox import Composer
from satworks.intake.batcher import IntakeBatcher
from satworks.intake.draws import DrawIntake
from satworks.intake.emails import EmailIntake
from satworks.intake.jobs import JobIntake
from satworks.intake.payments import PaymentIntake
from satworks.intake.requeue import DeadLetterRequeue
from satworks.intake.webhooks import WebhookIntake
from satworks.settings import Settings


@dataclass(frozen=True)
class Intake:
    engine: AsyncEngine
    client: BrokerClient
    jobs: JobIntake
    payments: PaymentIntake
    emails: EmailIntake
    webhooks: WebhookIntake
    dead_letters: DeadLetterRequeue
    draws: DrawIntake


@asynccontextmanager
async def open_intake(
    settings: Settings,
    *,
    on_enqueued: Callable[[Sequence[NewJob]], None] | None = None,
    pool_size: int | None = None,
    threads: int = 4,
) -> AsyncIterator[Intake]:
    """Open everything the intake uses and close it again. Nothing connects before first use.

    ``pool_size``: database connections (default ``settings.db_pool_size``); ``threads``: the executor
    for synchronous broker calls (RabbitMQ, queue stats)."""
    engine = async_engine(settings.database_url, pool_size=pool_size or settings.db_pool_size)
    broker = build_broker(settings)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="satworks-intake")
    client = BrokerClient(broker, executor)
    batcher = IntakeBatcher(
        engine,
        client,
        batch_max=settings.intake_batch_max,
        default_max_age_ms=settings.default_max_age_ms,
        on_enqueued=on_enqueued,
    )
    payments = PaymentIntake(engine, client, queue_prefix=settings.queue_prefix, network=settings.bitcoin_network)
    emails = EmailIntake(engine, client, Composer(settings), queue_prefix=settings.queue_prefix)
    webhooks = WebhookIntake(engine, client, settings)
    draws = DrawIntake(engine, client, settings)
    batcher.start()
    try:
        jobs = JobIntake(batcher, queue_prefix=settings.queue_prefix)
        requeue = DeadLetterRequeue(engine, client, default_max_age_ms=settings.default_max_age_ms)
        yield Intake(engine, client, jobs, payments, emails, webhooks, requeue, draws)
    finally:
        await batcher.stop()
        draws.close()
        await client.aclose()
        await engine.dispose()
        executor.shutdown(wait=True)
        broker.close()
