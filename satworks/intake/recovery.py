"""Committed work whose first message never reached the broker is sent again.

Jobs keep ``enqueued = 0`` until the broker has their message; payment requests stay ``creating``
until their address (or invoice) job has run. A web process that died between commit and enqueue
leaves such rows behind; every web process sweeps them (``recover_forever``). Sending twice is
harmless: workers claim jobs with a conditional update, the address and invoice jobs are
compare-and-sets (and the invoice job asks lnd for one invoice whatever the number of attempts).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from satworks import clock
from satworks.broker.client import BrokerClient
from satworks.db import jobs as jobs_db
from satworks.db import payment_resends as resends
from satworks.db.engine import db_errors
from satworks.errors import DependencyUnavailable
from satworks.intake.batcher import job_item
from satworks.intake.payments import creation_message
from satworks.settings import Settings

log = logging.getLogger(__name__)
EVERY_S = 30.0
OLDER_THAN_S = 60.0


async def requeue_stranded_jobs(
    engine: AsyncEngine, client: BrokerClient, *, older_than_s: float, default_max_age_ms: int, limit: int = 500
) -> int:
    """Hand jobs committed more than ``older_than_s`` ago but never enqueued to the broker; returns
    how many. Safe in many processes (the rows are locked with ``SKIP LOCKED``)."""
    cutoff = clock.utcnow() - timedelta(seconds=older_than_s)
    async with jobs_db.stranded(engine, cutoff, limit) as stranded:
        now = clock.utcnow()
        items = []
        for job in stranded:
            due_in = job.scheduled_for - now if job.scheduled_for is not None else None
            delay_ms = max(0, int(due_in.total_seconds() * 1000)) if due_in is not None else None
            items.append(job_item(job, delay_ms, default_max_age_ms))
        await client.enqueue(items)
    if stranded:
        log.warning("requeued stranded jobs", extra={"action": "stranded_requeued", "count": len(stranded)})
    return len(stranded)


async def requeue_stranded_payments(
    engine: AsyncEngine,
    client: BrokerClient,
    *,
    older_than_s: float,
    queue_prefix: str,
    max_gap_s: float,
    limit: int = 500,
) -> int:
    """Re-send the address (or invoice) job of requests stuck in ``creating``; returns how many.

    Throttled per request (``db.payment_resends``): the gap between re-sends doubles from
    ``older_than_s`` up to ``max_gap_s``, so a long node outage does not pile up address jobs."""
    cutoff = clock.utcnow() - timedelta(seconds=older_than_s)
    with db_errors():
        async with engine.begin() as conn:
            ids = await resends.stranded_creating(conn, cutoff, limit, min_gap_s=older_than_s, max_gap_s=max_gap_s)
            if ids:  # sent before the stamps commit: a refused send leaves them due
                await client.enqueue([(creation_message(pid, method, queue_prefix), None) for pid, method in ids])
    if ids:
        log.warning("requeued stranded payments", extra={"action": "stranded_payments", "count": len(ids)})
    return len(ids)


async def recover_forever(engine: AsyncEngine, client: BrokerClient, settings: Settings) -> None:
    """Both sweeps every ``EVERY_S``, for rows older than ``OLDER_THAN_S``, until cancelled."""
    while True:
        await asyncio.sleep(EVERY_S)
        try:
            await requeue_stranded_jobs(
                engine, client, older_than_s=OLDER_THAN_S, default_max_age_ms=settings.default_max_age_ms
            )
            await requeue_stranded_payments(
                engine,
                client,
                older_than_s=OLDER_THAN_S,
                queue_prefix=settings.queue_prefix,
                max_gap_s=settings.stranded_payment_resend_max_s,
            )
        except DependencyUnavailable:  # the database or the broker is down: the next round tries again
            log.warning("stranded sweep failed; retrying later", extra={"action": "stranded_failed"}, exc_info=True)
        except Exception:  # the loop's boundary: a bug must not end the sweep for good
            log.exception("stranded sweep failed", extra={"action": "stranded_failed"})
