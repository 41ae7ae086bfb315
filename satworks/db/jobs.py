"""Statements over the job store. Every state move is a conditional UPDATE, so a second run is a no-op."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Update, and_, bindparam, case, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert

from satworks.db.schema import jobs

WAITING = ("queued", "scheduled", "retrying")
CLAIMABLE = (*WAITING, "running")
FINISHED = ("succeeded", "failed", "dead", "cancelled")

DOCUMENT_COLUMNS = [c for c in jobs.c if c.name not in ("request_hash", "enqueued", "app_id", "crashes")]


def insert_many() -> ReturningInsert[Any]:
    """INSERT for a batch of rows; rows whose idempotency key exists already are skipped, not returned."""
    return (
        insert(jobs)
        .on_conflict_do_nothing(index_elements=[jobs.c.app_id, jobs.c.idempotency_key])
        .returning(jobs.c.id, jobs.c.seq)
    )


def by_idempotency_keys(pairs: Sequence[tuple[uuid.UUID, str]]) -> Select[Any]:
    return select(*DOCUMENT_COLUMNS, jobs.c.app_id, jobs.c.request_hash).where(
        tuple_(jobs.c.app_id, jobs.c.idempotency_key).in_(pairs)
    )


def mark_enqueued(ids: Sequence[uuid.UUID]) -> Update:
    return update(jobs).where(jobs.c.id.in_(ids)).values(enqueued=1)


def delete_unenqueued(ids: Sequence[uuid.UUID]) -> Any:
    """Undo a batch whose messages never reached the broker, so nothing half-done is left behind."""
    return jobs.delete().where(jobs.c.id.in_(ids), jobs.c.enqueued == 0, jobs.c.status.in_(WAITING))


def stranded(older_than: datetime, limit: int) -> Select[Any]:
    """Jobs committed but never handed to the broker (the intake died between the two)."""
    return (
        select(jobs.c.id, jobs.c.type, jobs.c.queue, jobs.c.scheduled_for, jobs.c.max_retries)
        .where(jobs.c.enqueued == 0, jobs.c.created_at < older_than, jobs.c.status.in_(WAITING))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def get(app_id: uuid.UUID, job_id: uuid.UUID) -> Select[Any]:
    return select(*DOCUMENT_COLUMNS).where(jobs.c.id == job_id, jobs.c.app_id == app_id)


def listing(
    app_id: uuid.UUID, *, status: str | None, job_type: str | None, before_seq: int | None, limit: int
) -> Select[Any]:
    query = select(*DOCUMENT_COLUMNS).where(jobs.c.app_id == app_id)
    if status is not None:
        query = query.where(jobs.c.status == status)
    if job_type is not None:
        query = query.where(jobs.c.type == job_type)
    if before_seq is not None:
        query = query.where(jobs.c.seq < before_seq)
    return query.order_by(jobs.c.seq.desc()).limit(limit)


def cancel(app_id: uuid.UUID, job_id: uuid.UUID) -> Update:
    return (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.app_id == app_id, jobs.c.status.in_(WAITING))
        .values(status="cancelled", finished_at=func.now(), next_retry_at=None)
        .returning(*DOCUMENT_COLUMNS)
    )


def counts_by_status_and_type() -> Select[Any]:
    return select(jobs.c.status, jobs.c.type, func.count()).group_by(jobs.c.status, jobs.c.type)


# --- worker transitions -------------------------------------------------------------------------------


def claim(ids: Sequence[uuid.UUID]) -> Any:
    """Move waiting (or crashed-while-running) jobs to running, counting attempts and crashes.

    Returns one row per job that may run: ``id, type, payload, attempts, crashes, previous``.
    A job that is cancelled or finished is not returned, so its message is skipped.
    """
    prior = (
        select(jobs.c.id, jobs.c.status.label("previous"))
        .where(jobs.c.id.in_(ids), jobs.c.status.in_(CLAIMABLE))
        .with_for_update()
        .subquery("prior")
    )
    return (
        update(jobs)
        .where(jobs.c.id == prior.c.id)
        .values(
            status="running",
            attempts=jobs.c.attempts + 1,
            crashes=jobs.c.crashes + case((prior.c.previous == "running", 1), else_=0),
            started_at=func.coalesce(jobs.c.started_at, func.now()),
            next_retry_at=None,
        )
        .returning(jobs.c.id, jobs.c.type, jobs.c.payload, jobs.c.attempts, jobs.c.crashes, prior.c.previous)
    )


def finish() -> Update:
    """Executed many: the outcome of a run, only for a job that is still running."""
    return (
        update(jobs)
        .where(and_(jobs.c.id == bindparam("b_id"), jobs.c.status == "running"))
        .values(
            status=bindparam("b_status"),
            result=bindparam("b_result"),
            error_type=bindparam("b_error_type"),
            error_message=bindparam("b_error_message"),
            next_retry_at=bindparam("b_next_retry_at"),
            finished_at=bindparam("b_finished_at"),
        )
    )


def kill(job_id: uuid.UUID, *, error_type: str, error_message: str) -> Update:
    """Dead-letter a job that is not finished (crash loop, age limit)."""
    return (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status.not_in(FINISHED))
        .values(
            status="dead",
            error_type=error_type,
            error_message=error_message,
            finished_at=func.now(),
            next_retry_at=None,
        )
    )
