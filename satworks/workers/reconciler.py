"""The reconciler: every accepted job keeps a message that can run it, and no job stays ``running`` for ever.

Postgres is the record of every job; the broker only carries messages, and can lose them (Redis
restarted without persistence, ``FLUSHALL``, a lost RabbitMQ). Each run (one at a time, an advisory
lock) does three things, cheaply when there is nothing to repair:

1. **Broker wipe** (``broker/inventory.py``, the epoch): when the broker's copy of the epoch is
   missing or older than Postgres's, every waiting job handed to the broker gets a new message. No
   lookup: whatever the broker held before is gone, and what it received since (new jobs, a worker
   re-enqueueing a delayed message it held in memory) is made harmless by the generation below.
2. **Lost messages** (Redis): waiting jobs due more than ``reconcile_overdue_s`` ago have their
   messages looked for; a job with none gets a new one, or is ``dead`` (``AgeLimitExceeded``) when it
   waited past its age limit, as Dramatiq would have made it.
3. **Stuck running**: a job claimed longer ago than its time limit + the outcome patience +
   ``reconcile_overdue_s`` and with no message is one whose outcome was lost (``outcome_lost``) or
   whose worker and message both vanished. It is never re-run (it may have done its work): it ends
   ``dead`` with ``OutcomeLost``. A message that still exists means a worker holds it or it was
   handed back after a crash: a claim will settle the job.

**Exactly once in effect.** A new message carries the job's next *generation*, committed before the
message is sent (``jobs.generation``); a worker claims a job only with a message of its current
generation. Either the old message claimed the job first (then the reconciler's conditional UPDATE
finds it no longer waiting and sends nothing) or the reconciler moved the generation first (then the
old message, wherever it still is, is skipped). Every repair also names the attempt count it saw,
so a job claimed in between is left alone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from satworks import clock
from satworks.broker.client import enqueue_many
from satworks.broker.errors import broker_errors
from satworks.broker.inventory import Inventory, inventory_of
from satworks.broker.messages import Delayed, job_message
from satworks.db import reconcile as db
from satworks.db.reconcile import Candidate
from satworks.jobs.catalog import JOB_TYPES, max_age_ms
from satworks.jobs.resources import WorkerResources
from satworks.jobs.status import WAITING, JobStatus
from satworks.workers.middleware.tracking import OUTCOME_PATIENCE_S

log = logging.getLogger(__name__)

AGE_LIMIT_MESSAGE = "the job waited longer than its maximum age (its message was lost and found too late)"
OUTCOME_LOST_MESSAGE = (
    "the job ran past its time limit and no worker holds it: its outcome was not recorded (outcome_lost) or its"
    " worker and message were both lost; it may have done its work, so it is not run again"
)


@dataclass
class Repairs:
    broker_wiped: bool = False
    requeued: int = 0  # waiting jobs given a new message
    expired: int = 0  # waiting jobs whose message was lost, past their age limit: dead
    outcome_lost: int = 0  # running jobs past their time limit with no message: dead
    unknown: int = 0  # candidates whose messages could not be looked for (queue too large, RabbitMQ)

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def reconcile(res: WorkerResources) -> dict[str, Any]:
    """One run; returns what it repaired. Raises ``DependencyUnavailable`` (retried) when Postgres
    or the broker cannot be asked; repairs committed before that stay done."""
    settings = res.settings
    inventory = inventory_of(res.broker, settings.queue_prefix)
    repairs = Repairs()
    with res.engine.connect() as lock_conn, lock_conn.begin():
        if not db.try_lock(lock_conn):
            log.info("another reconciler run is in progress", extra={"action": "reconcile_skipped"})
            return {"skipped": True}
        with res.engine.begin() as conn:
            stored, wiped_at = db.epoch(conn)
        held = inventory.epoch()
        if stored is None:
            nxt = (held or 0) + 1  # first run on this database: nothing to compare yet
        else:
            repairs.broker_wiped = wiped_at is not None or held is None or held < stored
            nxt = max(stored, held or 0) + 1
        if repairs.broker_wiped:
            if wiped_at is None:
                res.metrics.broker_wipes.inc()
                log.error(
                    "the broker lost its messages; sending every waiting job again",
                    extra={"action": "reconcile_broker_wiped", "epoch": stored, "broker_epoch": held},
                )
                with res.engine.begin() as conn:
                    db.mark_wiped(conn)
            inventory.set_epoch(nxt)  # before the resend: a wipe from now on is seen by the next run
            _resend_all(res, repairs)
        else:
            inventory.set_epoch(nxt)
            _lost_messages(res, inventory, repairs)
        _stuck_running(res, inventory, repairs)
        with res.engine.begin() as conn:
            db.store_epoch(conn, nxt)
    if repairs.requeued or repairs.expired or repairs.outcome_lost or repairs.broker_wiped:
        log.warning("reconciler repaired jobs", extra={"action": "reconcile_repaired", **repairs.as_result()})
    return repairs.as_result()


def _resend_all(res: WorkerResources, repairs: Repairs) -> None:
    """After a wipe: every waiting job handed to the broker, in batches, oldest due first."""
    now = clock.utcnow()
    after: tuple[datetime, Any] | None = None
    while True:
        with res.engine.begin() as conn:
            batch = db.waiting_due(conn, datetime.max.replace(tzinfo=now.tzinfo), after=after, limit=_batch(res))
        if not batch:
            return
        after = (batch[-1].at, batch[-1].id)
        _repair_waiting(res, batch, repairs)


def _lost_messages(res: WorkerResources, inventory: Inventory, repairs: Repairs) -> None:
    settings = res.settings
    overdue = clock.utcnow() - timedelta(seconds=settings.reconcile_overdue_s)
    with res.engine.begin() as conn:
        candidates = db.waiting_due(conn, overdue, after=None, limit=_batch(res))
    missing = _without_message(res, inventory, candidates, repairs)
    _repair_waiting(res, missing, repairs)


def _stuck_running(res: WorkerResources, inventory: Inventory, repairs: Repairs) -> None:
    settings = res.settings
    now = clock.utcnow()
    slack = timedelta(seconds=OUTCOME_PATIENCE_S + settings.reconcile_overdue_s)
    limits = {
        name: timedelta(milliseconds=job.time_limit_ms or settings.default_time_limit_ms)
        for name, job in JOB_TYPES.items()
    }
    shortest = min(limits.values(), default=timedelta(milliseconds=settings.default_time_limit_ms))
    with res.engine.begin() as conn:
        claimed = db.running_since(conn, now - shortest - slack, limit=_batch(res))
    default = timedelta(milliseconds=settings.default_time_limit_ms)
    overdue = [c for c in claimed if c.at < now - limits.get(c.type, default) - slack]
    lost = _without_message(res, inventory, overdue, repairs)
    if not lost:
        return
    with res.engine.begin() as conn:
        killed = db.kill(conn, lost, frozenset({JobStatus.RUNNING}), "OutcomeLost", OUTCOME_LOST_MESSAGE)
    if killed:
        repairs.outcome_lost += len(killed)
        res.metrics.repairs.labels("outcome_lost").inc(len(killed))
        log.error(
            "jobs stuck running settled as dead (OutcomeLost)",
            extra={"action": "reconcile_outcome_lost", "count": len(killed), "job_ids": [str(i) for i in killed[:20]]},
        )


def _without_message(
    res: WorkerResources, inventory: Inventory, candidates: Sequence[Candidate], repairs: Repairs
) -> list[Candidate]:
    """The candidates no message of their current generation can claim."""
    by_queue: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_queue[candidate.queue].append(candidate)
    missing = []
    for queue, group in by_queue.items():
        held = inventory.holding(queue, {c.id for c in group}, scan_max=res.settings.reconcile_scan_max)
        if held is None:
            repairs.unknown += len(group)
            log.info(
                "messages not looked for (queue too large or broker cannot tell)",
                extra={"action": "reconcile_unknown", "queue": queue, "count": len(group)},
            )
            continue
        missing += [c for c in group if c.generation not in held.get(c.id, set())]
    return missing


def _repair_waiting(res: WorkerResources, jobs: Sequence[Candidate], repairs: Repairs) -> None:
    """New messages for ``jobs`` (still waiting, as seen), or ``dead`` for those past their age limit."""
    if not jobs:
        return
    settings = res.settings
    now = clock.utcnow()
    too_old = [j for j in jobs if _remaining_age_ms(j, now, settings.default_max_age_ms) <= 0]
    resend = [j for j in jobs if j not in too_old]
    with res.engine.begin() as conn:
        generations = db.requeue(conn, resend)
    items = [_message(j, generations[j.id], now, settings.default_max_age_ms) for j in resend if j.id in generations]
    # After the commit: a worker's claim must see the new generation (one that read the old row would
    # skip the message for good). A failed send leaves jobs whose generation has no message: the next
    # run finds them again.
    with broker_errors():
        enqueue_many(res.broker, items)
    expired = []
    if too_old:
        with res.engine.begin() as conn:
            expired = db.kill(conn, too_old, WAITING, "AgeLimitExceeded", AGE_LIMIT_MESSAGE)
    for kind, ids in (("requeued", list(generations)), ("expired", expired)):
        if ids:
            res.metrics.repairs.labels(kind).inc(len(ids))
            log.warning(
                "jobs without a message: %s",
                kind,
                extra={"action": f"reconcile_{kind}", "count": len(ids), "job_ids": [str(i) for i in ids[:20]]},
            )
    repairs.requeued += len(generations)
    repairs.expired += len(expired)


def _remaining_age_ms(job: Candidate, now: datetime, default_max_age_ms: int) -> int:
    waited_ms = max(0, int((now - job.at).total_seconds() * 1000))
    return max_age_ms(job.type, default_max_age_ms) - waited_ms


def _message(job: Candidate, generation: int, now: datetime, default_max_age_ms: int) -> Delayed:
    """The job's message as the intake would send it, with its remaining age and its retries so far."""
    delay_ms = int((job.at - now).total_seconds() * 1000) if job.at > now else None
    message = job_message(
        job.id,
        job.type,
        job.queue,
        job.max_retries,
        delay_ms=delay_ms,
        max_age_ms=_remaining_age_ms(job, now, default_max_age_ms)
        if delay_ms is None
        else max_age_ms(job.type, default_max_age_ms),
        generation=generation,
    )
    failures = job.attempts - job.crashes  # runs that failed and were retried; crashes do not use retries
    if failures > 0:
        message.options["retries"] = failures
    return message, delay_ms


def _batch(res: WorkerResources) -> int:
    return res.settings.reconcile_batch
