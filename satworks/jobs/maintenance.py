"""Platform jobs that keep the job store honest: the reconciler and retention."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from satworks import clock
from satworks.db import retention
from satworks.jobs.base import JobContext, JobType, NoPayload

log = logging.getLogger(__name__)


def reconcile(ctx: JobContext, payload: NoPayload) -> dict[str, Any]:
    from satworks.workers.reconciler import reconcile as run  # the reconciler reads the job catalog

    return run(ctx.worker())


def retain(ctx: JobContext, payload: NoPayload) -> dict[str, Any]:
    """Delete what is older than its retention age, table by table, in bounded batches."""
    res = ctx.worker()
    settings = res.settings
    now = clock.utcnow()
    ages = {
        "jobs": settings.retention_jobs_days,
        "payment_audit": settings.retention_payment_audit_days,
        "app_events": settings.retention_events_days,
        "webhook_receipts": settings.retention_webhook_receipts_days,
    }
    limit, batches = settings.retention_batch_rows, settings.retention_max_batches
    deleted = {
        table: retention.purge(
            res.engine.begin,
            retention.TABLES[table],
            {"cutoff": now - timedelta(days=days)},
            limit=limit,
            max_batches=batches,
        )
        for table, days in ages.items()
    }
    with res.engine.begin() as conn:
        tasks = retention.tasks_with_runs(conn)
    runs_cutoff = now - timedelta(days=settings.retention_jobs_days)
    deleted["schedule_runs"] = sum(
        retention.purge(
            res.engine.begin,
            retention.SCHEDULE_RUNS,
            {"cutoff": runs_cutoff, "task": task},
            limit=limit,
            max_batches=batches,
        )
        for task in tasks
    )
    for table, count in deleted.items():
        if count:
            res.metrics.retention_deleted.labels(table).inc(count)
    log.info("retention ran", extra={"action": "retention_deleted", **deleted})
    return deleted


RECONCILE = JobType(
    name="platform.reconcile",
    payload=NoPayload,
    run=reconcile,
    default_priority="high",
    max_retries=3,
    min_backoff_ms=2_000,
    max_backoff_ms=30_000,
    time_limit_ms=10 * 60_000,
    max_age_ms=10 * 60_000,  # a run that waited this long is overtaken by the next slot's
    internal=True,
)
RETENTION = JobType(
    name="platform.retention",
    payload=NoPayload,
    run=retain,
    default_priority="low",
    max_retries=3,
    min_backoff_ms=10_000,
    max_backoff_ms=5 * 60_000,
    time_limit_ms=30 * 60_000,
    internal=True,
)
