"""Statements over the job store. Every state move is a conditional UPDATE, so a second run is a no-op.

The hot paths (the intake's batch INSERT, the workers' claims and outcomes) are static SQL run with
``exec_driver_sql``: one statement per batch whatever its size, so neither SQLAlchemy nor psycopg
compiles or parses anything per batch, and a batch's rows travel as one JSON document
(``jsonb_to_recordset``), which costs a few microseconds per row to build instead of per-value
adaptation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Update, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the stdlib encoder gives the same JSON
    orjson = None  # type: ignore[assignment]

from satworks.db.schema import jobs
from satworks.jobs.status import FINISHED, WAITING, JobStatus, sql_list

_RUNNING = f"'{JobStatus.RUNNING.value}'"
_CLAIMABLE = sql_list((*WAITING, JobStatus.RUNNING))
_FINISHED = sql_list(FINISHED)

DOCUMENT_COLUMNS = [c for c in jobs.c if c.name not in ("request_hash", "enqueued", "app_id", "crashes")]


def insert_many() -> ReturningInsert[Any]:
    """INSERT for a batch of rows; rows whose idempotency key exists already are skipped, not returned."""
    return (
        insert(jobs)
        .on_conflict_do_nothing(index_elements=[jobs.c.app_id, jobs.c.idempotency_key])
        .returning(jobs.c.id, jobs.c.seq)
    )


# --- static SQL for batches (run with ``exec_driver_sql``, psycopg's ``%s`` placeholders) -------------------

INSERT_BATCH = (
    "INSERT INTO jobs (id, app_id, type, queue, priority, status, payload, max_retries, idempotency_key,"
    " request_hash, created_at, scheduled_for)"
    " SELECT id, app_id, type, queue, priority, status, payload, max_retries, idempotency_key,"
    " request_hash, created_at, scheduled_for"
    " FROM jsonb_to_recordset(%s::jsonb) AS r(id uuid, app_id uuid, type text, queue text, priority text,"
    " status text, payload jsonb, max_retries int, idempotency_key text, request_hash text,"
    " created_at timestamptz, scheduled_for timestamptz)"
    " ON CONFLICT (app_id, idempotency_key) DO NOTHING RETURNING id, seq"
)
"""One parameter, ``rows_json(rows)``. Rows whose idempotency key exists already are skipped, not
returned; the others come back as ``(id, seq)``. Columns not listed keep their defaults (0, NULL)."""

MARK_ENQUEUED = "UPDATE jobs SET enqueued = 1 WHERE id = ANY(%s::uuid[])"
"""One parameter, ``uuid_array(ids)``."""

CLAIM_BATCH = (
    f"UPDATE jobs SET status = {_RUNNING}, attempts = attempts + 1,"  # noqa: S608 - enum values, no input
    f" crashes = crashes + CASE WHEN status = {_RUNNING} THEN 1 ELSE 0 END,"
    " started_at = coalesce(started_at, now()), next_retry_at = NULL"
    f" WHERE id = ANY(%s::uuid[]) AND status IN {_CLAIMABLE}"
    " RETURNING id, type, payload, attempts, crashes"
)
"""Move waiting (or crashed-while-running) jobs to running, counting attempts and crashes: one
parameter, ``uuid_array(ids)``; the statuses are ``WAITING`` and ``running``. Returns ``id, type, payload, attempts,
crashes`` per job that may run; a cancelled or finished job is not returned, so its message is skipped.

A claim that finds the job still ``running`` counts a crash: the right-hand sides read the row as it
was before this update, and a row changed by a concurrent transaction is re-read (and its WHERE
re-checked) after that transaction commits, so the count is right under concurrency too."""

FINISH_BATCH = (
    "UPDATE jobs SET status = o.status, result = o.result, error_type = o.error_type,"  # noqa: S608
    " error_message = o.error_message, next_retry_at = o.next_retry_at, finished_at = o.finished_at"
    " FROM jsonb_to_recordset(%s::jsonb) AS o(id uuid, status text, result jsonb, error_type text,"
    " error_message text, next_retry_at timestamptz, finished_at timestamptz)"
    f" WHERE jobs.id = o.id AND jobs.status = {_RUNNING}"
)
"""``finish`` for a batch: one parameter, ``rows_json(outcomes)`` with the keys ``id, status, result,
error_type, error_message, next_retry_at, finished_at``. Ids must be unique within the batch."""


KILL = (
    f"UPDATE jobs SET status = '{JobStatus.DEAD.value}', error_type = %s, error_message = %s,"  # noqa: S608
    " finished_at = now(),"
    f" next_retry_at = NULL WHERE id = %s AND status NOT IN {_FINISHED}"
)
"""``kill`` as static SQL (the statuses are ``FINISHED``): parameters error type, error message, job id."""

FINISH_AND_CLAIM = "WITH finished AS (" + FINISH_BATCH + ") " + CLAIM_BATCH
"""``FINISH_BATCH`` and ``CLAIM_BATCH`` in one statement (parameters: outcomes, then ids), for a batch
whose outcomes and claims concern different jobs; the claimed rows come back."""


def rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """A JSON array of row objects (UUIDs as strings, datetimes in RFC 3339 with their offset)."""
    if orjson is not None:
        try:
            return orjson.dumps(rows).decode()
        except TypeError:  # e.g. an integer beyond 64 bits in a payload: the stdlib encoder takes any
            pass
    return json.dumps(rows, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def uuid_array(ids: Sequence[uuid.UUID]) -> str:
    """A Postgres array literal of UUIDs, to be cast with ``::uuid[]`` (cheaper than adapting a list)."""
    return "{" + ",".join(map(str, ids)) + "}"


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
        .values(status=JobStatus.CANCELLED, finished_at=func.now(), next_retry_at=None)
        .returning(*DOCUMENT_COLUMNS)
    )


def counts_by_status_and_type() -> Select[Any]:
    return select(jobs.c.status, jobs.c.type, func.count()).group_by(jobs.c.status, jobs.c.type)
