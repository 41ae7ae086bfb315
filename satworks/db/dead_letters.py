"""Dead letters: jobs that ended ``dead`` (retries exhausted, crash loop, age limit) or ``failed``
(a permanent error), listed for operators and given a new run on request.

A requeue moves the job back to ``queued`` in the same row (same id, ``attempts`` kept, ``crashes``
reset so a crash-looped job is not dead-lettered again at its first claim) and writes a
``job_requeued`` audit row once the caller has handed the messages to the broker (``requeued``);
a broker failure puts the jobs back as they were.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from satworks.audit import AuditKind
from satworks.db import audit
from satworks.db.engine import db_errors
from satworks.db.jobs import _RECORD_COLUMNS, JobRecord, _record
from satworks.db.pages import Page, page_of
from satworks.db.schema import apps, job_watch, jobs, jobs_unenqueued
from satworks.errors import Conflict, NotFound
from satworks.jobs.status import JobStatus

DEAD_LETTER_STATUSES = (JobStatus.DEAD, JobStatus.FAILED)


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters: ``queue`` is the stored (prefixed) queue name; ``None`` matches any."""

    queue: str | None = None
    job_type: str | None = None
    app_name: str | None = None
    status: JobStatus | None = None  # dead or failed; None: both

    def conditions(self) -> list[ColumnElement[bool]]:
        statuses = [self.status] if self.status is not None else list(DEAD_LETTER_STATUSES)
        conds: list[ColumnElement[bool]] = [  # found through job_watch's partial index, not a scan of jobs
            job_watch.c.state.in_(statuses),
            jobs.c.id == job_watch.c.id,
            # Implied by the state, but a requeue locks only the jobs row: after waiting on a concurrent
            # requeue, Postgres re-checks the jobs row's own conditions, not the job_watch row's.
            jobs.c.status.in_(statuses),
        ]
        if self.queue is not None:
            conds.append(jobs.c.queue == self.queue)
        if self.job_type is not None:
            conds.append(jobs.c.type == self.job_type)
        if self.app_name is not None:
            conds.append(jobs.c.app_id == select(apps.c.id).where(apps.c.name == self.app_name).scalar_subquery())
        return conds


@dataclass(frozen=True, slots=True)
class DeadLetter:
    job: JobRecord
    app: str


def _listed() -> Select[Any]:
    return select(*_RECORD_COLUMNS, apps.c.name).join(apps, apps.c.id == jobs.c.app_id)


async def listing(
    engine: AsyncEngine, which: DeadLetterFilter, *, before_seq: int | None, limit: int
) -> Page[DeadLetter]:
    """Dead letters of every app, newest first."""
    query = _listed().where(*which.conditions())
    if before_seq is not None:
        query = query.where(job_watch.c.seq < before_seq)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(job_watch.c.seq.desc()).limit(limit + 1))).all()
    letters = [DeadLetter(_record(r[:-1]), r[-1]) for r in rows]
    return page_of(letters, limit, lambda d: d.job.seq)


async def count(engine: AsyncEngine, which: DeadLetterFilter) -> int:
    """How many dead letters match (a bulk requeue's dry run)."""
    with db_errors():
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).where(*which.conditions()))).scalar_one())


async def counts_by_queue(engine: AsyncEngine) -> dict[tuple[str, JobStatus], int]:
    """``(stored queue name, dead|failed) -> jobs`` now, for the dead-letter gauges."""
    query = (
        select(jobs.c.queue, jobs.c.status, func.count())
        .where(*DeadLetterFilter().conditions())
        .group_by(jobs.c.queue, jobs.c.status)
    )
    with db_errors():
        async with engine.connect() as conn:
            return {(queue, JobStatus(status)): n for queue, status, n in await conn.execute(query)}


@asynccontextmanager
async def requeued(
    engine: AsyncEngine,
    which: DeadLetterFilter,
    *,
    job_id: uuid.UUID | None,
    limit: int,
    actor: str,
    client_address: str | None,
) -> AsyncIterator[list[JobRecord]]:
    """Move up to ``limit`` matching dead letters (or the one ``job_id``) back to ``queued``, committed,
    and yield their records for the caller to send; then audit each. If the block raises (the broker
    refused), each job still ``queued`` as we left it gets its old status back and nothing is audited.

    Committed before the send, not after: a worker's claim reads the row as of its snapshot, so a
    message that reached a worker before the commit would find the job still dead and be skipped
    (Postgres re-checks a locked row only if its old version matched). A crash between the send and
    the audit row loses that row, not the requeue.

    With ``job_id``, raises ``NotFound`` for no such job and ``Conflict`` when it is not a dead letter
    (any more). Bulk requeues skip rows another transaction holds (``SKIP LOCKED``)."""
    conds = which.conditions()
    if job_id is not None:
        conds.append(jobs.c.id == job_id)
    picked = select(
        jobs.c.id,
        jobs.c.status.label("old_status"),
        jobs.c.finished_at.label("old_finished_at"),
        jobs.c.crashes.label("old_crashes"),
    ).where(*conds)
    if job_id is None:  # one job is found by its key; ordering it would walk the dead-letter index
        picked = picked.order_by(job_watch.c.seq).limit(limit)
    picked_cte = picked.with_for_update(of=jobs, skip_locked=job_id is None).cte("picked")
    move = (
        update(jobs)
        .where(jobs.c.id == picked_cte.c.id)
        .values(status=JobStatus.QUEUED.value, crashes=0, finished_at=None, next_retry_at=None)
        .returning(*_RECORD_COLUMNS, picked_cte.c.old_status, picked_cte.c.old_finished_at, picked_cte.c.old_crashes)
    )
    with db_errors():
        async with engine.begin() as conn:
            rows = (await conn.execute(move)).all()
            if job_id is not None and not rows:
                await _refuse(conn, job_id)
            if rows:  # sent here: a marker left by a failed mark must not make the stranded sweep send it too
                await conn.execute(jobs_unenqueued.delete().where(jobs_unenqueued.c.id.in_([r.id for r in rows])))
    moved = [_record(r[:-3]) for r in rows]
    try:
        yield moved
    except BaseException:
        with db_errors():
            async with engine.begin() as conn:
                for job, row in zip(moved, rows, strict=True):
                    await conn.execute(
                        update(jobs)
                        .where(
                            jobs.c.id == job.id,
                            jobs.c.status == JobStatus.QUEUED.value,
                            jobs.c.attempts == job.attempts,
                        )
                        .values(status=row[-3], finished_at=row[-2], crashes=row[-1])
                    )
        raise
    if moved:
        bulk = job_id is None
        trail = [
            audit.values(
                AuditKind.JOB_REQUEUED,
                actor=actor,
                app_id=job.app_id,
                subject_id=job.id,
                client_address=client_address,
                data={"from_status": row[-3], "type": job.type, "attempts": job.attempts, "bulk": bulk},
            )
            for job, row in zip(moved, rows, strict=True)
        ]
        with db_errors():
            async with engine.begin() as conn:
                await conn.execute(audit.entries(), trail)


async def _refuse(conn: AsyncConnection, job_id: uuid.UUID) -> None:
    status = (await conn.execute(select(jobs.c.status).where(jobs.c.id == job_id))).scalar()
    if status is None:
        raise NotFound("no such job")
    raise Conflict(f"a {status} job is not a dead letter", details={"status": status})
