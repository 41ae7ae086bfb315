"""Webhook delivery jobs: an endpoint's pump sends first attempts in event order; retries go one by one.

``webhooks.pump(endpoint_id)`` takes the endpoint's lease (one pump per endpoint at a time), sends its
``pending`` deliveries oldest event first, and records each batch's outcomes with their attempts in
one transaction. ``webhooks.deliver(delivery_id)`` makes one later attempt under the delivery's own
lease. After a retryable attempt, the next attempt's message is enqueued *before* the outcome
commits, so a crash in between can only leave a message that finds its attempt not due, never a
retry without a message; the sweep (``jobs/outbox.py``) revives what a lost message stranded.

Both are coroutines run on the worker process's event loop (Dramatiq's ``AsyncIO`` middleware), where
the ``WebhookSender``'s session and the async engine live.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import dramatiq
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks import clock
from satworks.broker.client import BrokerClient
from satworks.broker.messages import Delayed, internal_message
from satworks.db import webhook_deliveries as store
from satworks.db import webhook_endpoints as endpoints
from satworks.db.engine import db_errors
from satworks.db.webhook_deliveries import Due, Recorded
from satworks.integrations.webhooks.outcome import DeliveryAttempt, Outcome
from satworks.integrations.webhooks.sender import WebhookSender
from satworks.metrics.notify import NotifyMetrics
from satworks.settings import Settings
from satworks.webhooks.schedule import RetrySchedule
from satworks.webhooks.secrets import SecretBox
from satworks.webhooks.status import DeliveryStatus

log = logging.getLogger(__name__)

PUMP, DELIVER = "webhooks.pump", "webhooks.deliver"
QUEUE = "default"
BATCH = 50  # pending deliveries read and recorded together
PUMP_RUN_S = 60.0  # then the pump hands over (and enqueues itself again), so a backlog cannot hog a thread


@dataclass(frozen=True)
class WebhookResources:
    settings: Settings
    engine: AsyncEngine
    sender: WebhookSender
    client: BrokerClient
    box: SecretBox
    schedule: RetrySchedule
    metrics: NotifyMetrics

    @property
    def attempt_lease_s(self) -> float:
        """An attempt's lease: the whole request's timeout and room to record it."""
        return self.settings.webhook_timeout_s + 15.0

    @property
    def pump_lease_s(self) -> float:
        """A batch stops after a third of this, and a POST takes at most ``webhook_timeout_s``."""
        return 4 * self.attempt_lease_s

    async def close(self) -> None:
        await self.sender.close()
        await self.client.aclose()
        await self.engine.dispose()


def pump_message(endpoint_id: uuid.UUID, prefix: str) -> dramatiq.Message[object]:
    return internal_message(PUMP, (str(endpoint_id),), prefix, QUEUE)


def deliver_message(delivery_id: uuid.UUID, prefix: str) -> dramatiq.Message[object]:
    return internal_message(DELIVER, (str(delivery_id),), prefix, QUEUE)


async def pump(res: WebhookResources, endpoint_id: str) -> None:
    """Send the endpoint's pending deliveries in event order, if no other pump does."""
    eid = uuid.UUID(endpoint_id)
    started = time.monotonic()
    while True:
        with db_errors():
            async with res.engine.begin() as conn:
                lease = await endpoints.take_pump(conn, eid, res.pump_lease_s)
        if lease is None:
            return  # another pump holds it (it looks again before letting go), or the endpoint is gone
        finished = await _drain(res, lease, deadline=started + PUMP_RUN_S)
        if not finished:  # ran its time: hand over to a fresh message, behind whatever else waits
            await res.client.enqueue([(pump_message(eid, res.settings.queue_prefix), None)])
            return
        # Deliveries made after the last read but before the release found the lease taken: look again.
        with db_errors():
            async with res.engine.connect() as conn:
                if not await store.has_pending(conn, eid):
                    return


async def _drain(res: WebhookResources, lease: endpoints.Lease, *, deadline: float) -> bool:
    """Deliver batches until none is pending (True) or ``deadline`` passed (False); the lease is released."""
    held: endpoints.Lease | None = lease
    try:
        while held is not None:
            with db_errors():
                async with res.engine.connect() as conn:
                    batch = await store.pending(conn, held.endpoint.id, BATCH)
            if not batch:
                return True
            held = await _send_batch(res, held, batch)
            if time.monotonic() > deadline:
                return False
        return True  # the lease was lost (deleted endpoint, or expired and taken): its holder carries on
    finally:
        if held is not None:
            with db_errors():
                async with res.engine.begin() as conn:
                    await endpoints.release_pump(conn, held)


async def _send_batch(res: WebhookResources, lease: endpoints.Lease, batch: list[Due]) -> endpoints.Lease | None:
    endpoint = lease.endpoint
    secrets = [res.box.open(sealed) for sealed in endpoint.sealed_secrets(clock.utcnow())]
    outcomes: list[Recorded] = []
    follow_ups: list[Delayed] = []
    began = time.monotonic()
    for due in batch:
        started_at = clock.utcnow()
        attempt = await res.sender.deliver(endpoint.url, due.event.body(), secrets, headers=due.event.headers())
        recorded, delay_ms = _decide(res.schedule, due, attempt, started_at)
        outcomes.append(recorded)
        if delay_ms is not None:
            follow_ups.append((deliver_message(due.id, res.settings.queue_prefix), delay_ms))
        if time.monotonic() - began > res.pump_lease_s / 3:
            break  # renew the lease before it could run out
    with db_errors():
        async with res.engine.begin() as conn:
            await res.client.enqueue(follow_ups)  # before the commit: no retry is left without its message
            written = await store.record(conn, outcomes, expected=DeliveryStatus.PENDING)
            renewed = await endpoints.renew_pump(conn, lease, res.pump_lease_s)
    _count(res.metrics, [o for o in outcomes if o.id in written])
    return renewed


async def deliver(res: WebhookResources, delivery_id: str) -> None:
    """One later attempt of a delivery, if it is due and nobody is attempting it."""
    did = uuid.UUID(delivery_id)
    with db_errors():
        async with res.engine.begin() as conn:
            claimed = await store.claim_retry(conn, did, lease_s=res.attempt_lease_s)
            running = await store.lease_of(conn, did) if claimed is None else None
    if claimed is None:
        if running is not None:  # an attempt is in flight, or its worker died: look again when its lease ends
            wait_ms = max(0, int((running - clock.utcnow()).total_seconds() * 1000))
            raise dramatiq.Retry(delay=wait_ms + random.randint(100, 1_000))
        return  # not due (a stale copy), finished, or its endpoint was deleted
    secrets = [res.box.open(sealed) for sealed in claimed.endpoint.sealed_secrets(clock.utcnow())]
    event = claimed.due.event
    started_at = clock.utcnow()
    attempt = await res.sender.deliver(claimed.endpoint.url, event.body(), secrets, headers=event.headers())
    recorded, delay_ms = _decide(res.schedule, claimed.due, attempt, started_at)
    recorded = dataclasses.replace(recorded, lease=claimed.lease)
    with db_errors():
        async with res.engine.begin() as conn:
            if delay_ms is not None:
                await res.client.enqueue([(deliver_message(did, res.settings.queue_prefix), delay_ms)])
            written = await store.record(conn, [recorded], expected=DeliveryStatus.RETRYING)
    if written:
        _count(res.metrics, [recorded])
    else:
        log.warning("webhook attempt outlived its lease", extra={"action": "webhook_lease_lost"})


def _decide(
    schedule: RetrySchedule, due: Due, attempt: DeliveryAttempt, started_at: datetime
) -> tuple[Recorded, int | None]:
    """The delivery's next state after ``attempt``, and the delay of the next attempt if there is one."""
    status = {Outcome.DELIVERED: DeliveryStatus.DELIVERED, Outcome.FAILED: DeliveryStatus.FAILED}.get(
        attempt.outcome, DeliveryStatus.RETRYING
    )
    delay_ms: int | None = None
    next_at: datetime | None = None
    if attempt.outcome is Outcome.RETRY:
        window_start = due.window_started_at or started_at
        elapsed_ms = int((clock.utcnow() - window_start).total_seconds() * 1000)
        wish = None if attempt.retry_after_s is None else int(attempt.retry_after_s * 1000)
        delay_ms = schedule.delay_ms(due.window_attempts, elapsed_ms, retry_after_ms=wish)
        if delay_ms is None:
            status = DeliveryStatus.DEAD
        else:
            next_at = clock.utcnow() + timedelta(milliseconds=delay_ms)
    recorded = Recorded(
        id=due.id,
        status=status,
        outcome=attempt.outcome.value,
        started_at=started_at,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        response_head=attempt.response_head.replace("\x00", "\ufffd"),  # Postgres text holds no U+0000
        error=attempt.error,
        next_attempt_at=next_at,
    )
    return recorded, delay_ms


def _count(metrics: NotifyMetrics, outcomes: list[Recorded]) -> None:
    for outcome in outcomes:
        metrics.deliveries.labels(outcome.status.value).inc()
    dead = [o for o in outcomes if o.status is DeliveryStatus.DEAD]
    for o in dead:
        log.warning("webhook delivery dead", extra={"action": "webhook_dead", "delivery_id": str(o.id)})
