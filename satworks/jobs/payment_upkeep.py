"""Scheduled payment work, so no open request depends on a webhook arriving.

``platform.payments_sweep`` runs the sweep (``jobs.payments.sweep``: the wallet's transactions since
the stored cursor, then every request whose status can change, expiry included) on the worker's
payment resources. ``platform.payment_checks`` restarts the check chain of every open request no
check has evaluated for ``payment_stale_s`` (a chain whose retries ran out during a long node
outage), or that is past expiry and not evaluated since: its next ``payments.check`` continues the
chain where it stopped (``claim_check`` lets only one chain go on if the old one was alive after all).
Re-sends are throttled per request (``db.payment_resends``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from satworks import clock
from satworks.broker.client import enqueue_many
from satworks.broker.errors import broker_errors
from satworks.broker.messages import payment_message
from satworks.db import payment_resends
from satworks.jobs.base import JobContext, JobType, NoPayload
from satworks.jobs.payments import CHECK, sweep

log = logging.getLogger(__name__)
EXPIRY_GRACE_S = 60  # a chain checks a request just after its expiry; past this, it did not


def payments_sweep(ctx: JobContext, payload: NoPayload) -> dict[str, Any]:
    return sweep(ctx.worker().payments)


def payment_checks(ctx: JobContext, payload: NoPayload) -> dict[str, Any]:
    res = ctx.worker()
    settings = res.settings
    now = clock.utcnow()
    with res.engine.begin() as conn:
        due = payment_resends.stale_open(
            conn,
            stale_before=now - timedelta(seconds=settings.payment_stale_s),
            expired_before=now - timedelta(seconds=EXPIRY_GRACE_S),
            limit=settings.payment_checks_batch,
            min_gap_s=settings.payment_stale_s,
            max_gap_s=settings.stranded_payment_resend_max_s,
        )
        if due:  # sent before the stamps commit: a refused send leaves them due for the next run
            items = [(payment_message(CHECK, (str(pid), checks), settings.queue_prefix), None) for pid, checks in due]
            with broker_errors():
                enqueue_many(res.broker, items)
    if due:
        log.warning("payment check chains restarted", extra={"action": "payment_checks_revived", "count": len(due)})
    return {"revived": len(due)}


PAYMENTS_SWEEP = JobType(
    name="platform.payments_sweep",
    payload=NoPayload,
    run=payments_sweep,
    default_priority="high",
    max_retries=5,
    min_backoff_ms=2_000,
    max_backoff_ms=60_000,
    time_limit_ms=10 * 60_000,
    max_age_ms=30 * 60_000,
    internal=True,
)
PAYMENT_CHECKS = JobType(
    name="platform.payment_checks",
    payload=NoPayload,
    run=payment_checks,
    default_priority="high",
    max_retries=3,
    min_backoff_ms=2_000,
    max_backoff_ms=30_000,
    time_limit_ms=5 * 60_000,
    max_age_ms=10 * 60_000,
    internal=True,
)
