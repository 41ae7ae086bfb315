"""The job store: typed records, static SQL for the batch paths, and the queries of the API.

Every state move is a conditional UPDATE, so a second run is a no-op. The hot paths (the intake's
batch INSERT, the workers' claims and outcomes) are static SQL sent through psycopg on a held connection: one
statement per batch whatever its size, so neither SQLAlchemy nor psycopg compiles or parses anything
per batch, and a batch's rows travel as one JSON document (``jsonb_to_recordset``), which costs a few
microseconds per row to build instead of per-value adaptation.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, dataclass_transform

import orjson
from sqlalchemy import Select, func, select, tuple_, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.db.engine import db_errors
from satworks.db.held import HeldConnection
from satworks.db.pages import Page, page_of
from satworks.db.schema import job_watch, jobs, jobs_unenqueued
from satworks.errors import Conflict, NotFound
from satworks.jobs.base import Priority
from satworks.jobs.status import FINISHED, WAITING, JobStatus, sql_list

_RUNNING = f"'{JobStatus.RUNNING.value}'"
_CLAIMABLE = sql_list((*WAITING, JobStatus.RUNNING))
_FINISHED = sql_list(FINISHED)
_EVENTFUL = sql_list((JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD))  # statuses with a job.* event

ROW_ERRORS = (DataError, IntegrityError)
"""What a batch INSERT raises when one of its rows is refused (the batch is then written row by row)."""


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def _immutable(cls: type[_T]) -> type[_T]:
    """A slotted dataclass that the type checker holds frozen. Built once per request, the runtime
    freeze (``object.__setattr__`` per field) tripled its construction: 2.9 µs against 0.7 µs."""
    return dataclass(slots=True)(cls)


@_immutable
class JobRecord:
    """A stored job as the API shows it (plus its owner, request hash and listing position)."""

    id: uuid.UUID
    app_id: uuid.UUID
    type: str
    queue: str
    priority: Priority
    status: JobStatus
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error_type: str | None
    error_message: str | None
    attempts: int
    max_retries: int
    idempotency_key: str | None
    request_hash: str
    created_at: datetime
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    next_retry_at: datetime | None
    seq: int


@_immutable
class NewJob:
    """A job about to be inserted: exactly the columns ``INSERT_BATCH`` reads."""

    id: uuid.UUID
    app_id: uuid.UUID
    type: str
    queue: str
    priority: Priority
    status: JobStatus
    payload: dict[str, Any]
    max_retries: int
    idempotency_key: str | None
    request_hash: str
    created_at: datetime
    scheduled_for: datetime | None

    def stored(self, seq: int) -> JobRecord:
        """The record of this job once inserted as ``seq`` (the other columns keep their defaults)."""
        return JobRecord(
            self.id,
            self.app_id,
            self.type,
            self.queue,
            self.priority,
            self.status,
            self.payload,
            None,
            None,
            None,
            0,
            self.max_retries,
            self.idempotency_key,
            self.request_hash,
            self.created_at,
            self.scheduled_for,
            None,
            None,
            None,
            seq,
        )


_RECORD_COLUMNS = [jobs.c[f.name] for f in dataclasses.fields(JobRecord)]


def _record(row: Any) -> JobRecord:
    """A record from a row of ``_RECORD_COLUMNS``."""
    values = list(row)
    values[5] = JobStatus(values[5])
    return JobRecord(*values)


# --- static SQL for batches (run through psycopg, its ``%s`` placeholders) ----------------------------------

_INSERT_JOBS = (
    "INSERT INTO jobs (id, app_id, type, queue, priority, status, payload, max_retries, idempotency_key,"
    " request_hash, created_at, scheduled_for)"
    " SELECT id, app_id, type, queue, priority, status, payload, max_retries, idempotency_key,"
    " request_hash, created_at, scheduled_for"
    " FROM jsonb_to_recordset(%s::jsonb) AS r(id uuid, app_id uuid, type text, queue text, priority text,"
    " status text, payload jsonb, max_retries int, idempotency_key text, request_hash text,"
    " created_at timestamptz, scheduled_for timestamptz)"
    " ON CONFLICT (app_id, idempotency_key) DO NOTHING RETURNING id, seq, created_at"
)
INSERT_BATCH = (
    f"WITH inserted AS ({_INSERT_JOBS}),"  # noqa: S608 - this module's own SQL, no input
    " marked AS (INSERT INTO jobs_unenqueued (id, created_at) SELECT id, created_at FROM inserted)"
    " SELECT id, seq FROM inserted"
)
"""One parameter, ``rows_json(rows)``. Rows whose idempotency key exists already are skipped, not
returned; the others come back as ``(id, seq)``, each with its marker in ``jobs_unenqueued`` (the
message may not be in the broker yet). Columns not listed keep their defaults (0, NULL)."""

MARK_ENQUEUED = "DELETE FROM jobs_unenqueued WHERE id = ANY(%s::uuid[])"
"""One parameter, ``uuid_array(ids)``: the broker has these jobs' messages. Deleting a narrow marker
leaves the job's row alone (migration 0014 says why that matters)."""

CLAIM_BATCH = (
    f"UPDATE jobs SET status = {_RUNNING}, attempts = attempts + 1,"  # noqa: S608 - enum values, no input
    f" crashes = crashes + CASE WHEN status = {_RUNNING} AND coalesce(started_attempt, attempts) = attempts"
    " THEN 1 ELSE 0 END,"
    " started_attempt = CASE WHEN c.starting THEN attempts + 1 ELSE coalesce(started_attempt, attempts) END,"
    " started_at = coalesce(started_at, now()), claimed_at = now(), next_retry_at = NULL"
    " FROM unnest(%s::uuid[], %s::int[], %s::bool[]) AS c(id, generation, starting)"
    f" WHERE jobs.id = c.id AND jobs.generation = c.generation AND jobs.status IN {_CLAIMABLE}"
    " RETURNING jobs.id, jobs.type, jobs.payload, jobs.attempts, jobs.crashes,"
    " jobs.started_attempt < jobs.attempts - 1, c.generation"
)
"""Move waiting (or crashed-while-running) jobs to running, counting attempts and crashes: three
parameters, ``uuid_array(ids)``, ``int_array(generations)`` (the claiming messages' generations) and
``bool_array(starting)``, pairwise; the statuses are ``WAITING`` and ``running``. Returns ``id, type,
payload, attempts, crashes, unproven, generation`` per job that may run; a cancelled or finished job is
not returned, so its message is skipped, and neither is a job whose generation moved on (the
reconciler sent it a new message).

``starting``: the job starts now (its attempt is recorded as started), or the claim is made ahead,
for a job that waits in the worker's buffer (``START_BATCH`` records its start later). A claim that
finds the job still ``running`` counts a crash only if that attempt had started: a job that waited in
a dead worker's buffer never ran. ``unproven``: some earlier attempt was held by a worker that died
before its start was recorded (the job may or may not have run then), so this attempt's start is
recorded before it runs.

The right-hand sides read the row as it was before this update, and a row changed by a concurrent
transaction is re-read (and its WHERE re-checked) after that transaction commits, so the counts are
right under concurrency too."""

START_BATCH = (
    "UPDATE jobs SET started_attempt = c.attempt"  # noqa: S608 - enum values, no input
    " FROM unnest(%s::uuid[], %s::int[]) AS c(id, attempt)"
    f" WHERE jobs.id = c.id AND jobs.status = {_RUNNING} AND jobs.attempts = c.attempt"
)
"""Record that claimed-ahead attempts started: ``uuid_array(ids)``, ``int_array(attempts)`` (each claim's)."""

RELEASE_BATCH = (
    f"UPDATE jobs SET status = '{JobStatus.QUEUED.value}', attempts = jobs.attempts - 1,"  # noqa: S608
    " started_at = CASE WHEN jobs.attempts = 1 THEN NULL ELSE jobs.started_at END"
    " FROM unnest(%s::uuid[], %s::int[]) AS c(id, attempt)"
    f" WHERE jobs.id = c.id AND jobs.status = {_RUNNING} AND jobs.attempts = c.attempt"
    " AND jobs.started_attempt < jobs.attempts"
)
"""Give back claims made ahead for jobs that never started (the worker is stopping and returns their
messages to the broker): ``queued`` again, the attempt not counted. Parameters as ``START_BATCH``."""

_OUTCOMES = (
    "outcomes AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS o(id uuid, status text,"
    " result jsonb, error_type text, error_message text, next_retry_at timestamptz, finished_at timestamptz))"
)
_FINISH = (
    "UPDATE jobs SET status = o.status, result = o.result, error_type = o.error_type,"  # noqa: S608
    " error_message = o.error_message, next_retry_at = o.next_retry_at, finished_at = o.finished_at,"
    " started_attempt = jobs.attempts"
    " FROM outcomes o WHERE jobs.id = ANY(ARRAY(SELECT id FROM outcomes)) AND jobs.id = o.id"
    f" AND jobs.status = {_RUNNING}"
    " RETURNING jobs.id, jobs.app_id, jobs.type, jobs.status, jobs.attempts, jobs.result, jobs.error_type,"
    " jobs.error_message"
)
"""The outcomes of the CTE ``outcomes`` applied to running jobs (an outcome proves its attempt started).
The ids go in once more as an array: the planner then probes the primary key for them. Joined to the
recordset alone (100 rows for all it knows) and with few jobs ``running`` by the statistics, it scanned
the whole table below about 10,000 jobs instead (1.3 ms a batch at 6,000 jobs, against 0.01 ms)."""

JOB_EVENTS = (
    "INSERT INTO app_events (app_id, type, subject_id, data)"  # noqa: S608 - enum values, no input
    " SELECT f.app_id, 'job.' || f.status, f.id, jsonb_build_object('job_id', f.id, 'type', f.type,"
    " 'status', f.status, 'attempts', f.attempts) || CASE WHEN f.status = 'succeeded'"
    " THEN jsonb_build_object('result', f.result)"
    " ELSE jsonb_build_object('error', jsonb_build_object('type', f.error_type, 'message', f.error_message)) END"
    f" FROM finished f WHERE f.status IN {_EVENTFUL} AND EXISTS (SELECT 1 FROM webhook_endpoints ep"
    " WHERE ep.app_id = f.app_id AND ep.deleted_at IS NULL AND ep.events && ARRAY['*', 'job.*', 'job.' || f.status])"
)
"""``job.succeeded``, ``job.failed`` and ``job.dead`` events for the rows of the CTE ``finished``, only for
apps with an endpoint subscribed to them: an outcome of an app without one costs one index probe of
``webhook_endpoints_app``, and no row."""

FINISH_BATCH = "WITH " + _OUTCOMES + ", finished AS (" + _FINISH + ") " + JOB_EVENTS
"""``finish`` for a batch, with its job events: one parameter, ``rows_json(outcomes)`` with the keys ``id,
status, result, error_type, error_message, next_retry_at, finished_at``. Ids must be unique within the batch."""


KILL = (
    f"WITH finished AS (UPDATE jobs SET status = '{JobStatus.DEAD.value}', error_type = %s,"  # noqa: S608
    " error_message = %s, finished_at = now(),"
    f" next_retry_at = NULL WHERE id = %s AND status NOT IN {_FINISHED}"
    " RETURNING id, app_id, type, status, attempts, result, error_type, error_message) " + JOB_EVENTS
)
"""``kill`` as static SQL (the statuses are ``FINISHED``), with its ``job.dead`` event: parameters error
type, error message, job id."""

FINISH_AND_CLAIM = (
    "WITH " + _OUTCOMES + ", finished AS (" + _FINISH + "), job_events AS (" + JOB_EVENTS + ") " + CLAIM_BATCH
)
"""``FINISH_BATCH`` and ``CLAIM_BATCH`` in one statement (parameters: outcomes, ids, generations, starting), for a batch
whose outcomes and claims concern different jobs; the claimed rows come back."""


def rows_json(rows: Sequence[Any]) -> str:
    """A JSON array of row objects, dicts or dataclasses (UUIDs as strings, datetimes in RFC 3339 with
    their offset)."""
    try:
        return orjson.dumps(rows).decode()
    except TypeError:  # e.g. an integer beyond 64 bits in a payload: the stdlib encoder takes any
        return json.dumps(rows, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def uuid_array(ids: Sequence[uuid.UUID]) -> str:
    """A Postgres array literal of UUIDs, to be cast with ``::uuid[]`` (cheaper than adapting a list)."""
    return "{" + ",".join(map(str, ids)) + "}"


def int_array(values: Sequence[int]) -> str:
    """A Postgres array literal of integers, to be cast with ``::int[]``."""
    return "{" + ",".join(map(str, values)) + "}"


def bool_array(values: Sequence[bool]) -> str:
    """A Postgres array literal of booleans, to be cast with ``::bool[]``."""
    return "{" + ",".join("t" if value else "f" for value in values) + "}"


# --- the intake (async engine) -------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenBatch:
    inserted: dict[uuid.UUID, int]
    """id -> seq of the jobs inserted now."""
    existing: dict[tuple[uuid.UUID, str], JobRecord]
    """(app id, idempotency key) -> the stored job, for the jobs skipped because their key existed."""


async def insert_batch(held: HeldConnection, batch: Sequence[NewJob]) -> WrittenBatch:
    """INSERT the batch in one statement on the batcher's held connection, in autocommit (the whole
    batch or nothing); read the jobs whose keys existed already.

    Raises ``DependencyUnavailable`` when the database cannot be reached, one of ``ROW_ERRORS`` when a
    row is refused (nothing of the batch is written then)."""
    inserted: dict[uuid.UUID, int] = dict(await held.run(INSERT_BATCH, (rows_json(batch),)))  # (id, seq)
    if len(inserted) == len(batch):
        return WrittenBatch(inserted, {})
    pairs = [(j.app_id, j.idempotency_key) for j in batch if j.id not in inserted and j.idempotency_key]
    with db_errors():
        async with held.engine.connect() as conn:
            rows = await conn.execute(
                select(*_RECORD_COLUMNS).where(tuple_(jobs.c.app_id, jobs.c.idempotency_key).in_(pairs))
            )
            existing = {(r.app_id, r.idempotency_key): _record(r) for r in rows}
    return WrittenBatch(inserted, existing)


async def mark_enqueued(held: HeldConnection, ids: Sequence[uuid.UUID]) -> None:
    """Bookkeeping after the broker took the jobs' messages (the stranded sweep skips them then)."""
    await held.run(MARK_ENQUEUED, (uuid_array(ids),))


async def delete_unenqueued(engine: AsyncEngine, ids: Sequence[uuid.UUID]) -> None:
    """Undo a batch whose messages never reached the broker, so nothing half-done is left behind. A job
    whose marker the stranded sweep took meanwhile is in the broker after all, and stays."""
    with db_errors():
        async with engine.begin() as conn:
            unmarked = jobs_unenqueued.delete().where(jobs_unenqueued.c.id.in_(ids)).returning(jobs_unenqueued.c.id)
            gone = [row.id for row in await conn.execute(unmarked)]
            if gone:
                await conn.execute(jobs.delete().where(jobs.c.id.in_(gone), jobs.c.status.in_(WAITING)))


@asynccontextmanager
async def stranded(engine: AsyncEngine, older_than: datetime, limit: int) -> AsyncIterator[list[JobRecord]]:
    """Jobs committed but never handed to the broker (the intake died between the two): their markers
    are locked for the block (``SKIP LOCKED``: safe in many processes) and deleted when it succeeds.
    Markers of jobs that are gone or no longer waiting are dropped."""
    u = jobs_unenqueued
    with db_errors():
        async with engine.begin() as conn:
            markers = select(u.c.id).where(u.c.created_at < older_than).order_by(u.c.created_at).limit(limit)
            taken = [row.id for row in await conn.execute(markers.with_for_update(skip_locked=True))]
            found = []
            if taken:
                query = select(*_RECORD_COLUMNS).where(jobs.c.id.in_(taken), jobs.c.status.in_(WAITING))
                found = [_record(r) for r in await conn.execute(query)]
            yield found
            if taken:
                await conn.execute(u.delete().where(u.c.id.in_(taken)))


# --- the API (async engine) ----------------------------------------------------------------------------


async def get(engine: AsyncEngine, app_id: uuid.UUID, job_id: uuid.UUID) -> JobRecord | None:
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(_of_app(app_id).where(jobs.c.id == job_id))).first()
    return _record(row) if row is not None else None


async def listing(
    engine: AsyncEngine,
    app_id: uuid.UUID,
    *,
    status: JobStatus | None,
    job_type: str | None,
    before_seq: int | None,
    limit: int,
) -> Page[JobRecord]:
    """The app's jobs, newest first, filtered by status and type.

    A status ``job_watch`` keeps (waiting, running, dead, failed: the rare ones) is found through its
    ``(app_id, state, seq)`` index, so a page costs the same whatever the number of jobs; the others
    (succeeded, cancelled) walk the app's ``(app_id, seq)`` index."""
    query = listing_query(app_id, status=status, job_type=job_type, before_seq=before_seq, limit=limit + 1)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return page_of([_record(r) for r in rows], limit, lambda job: job.seq)


def listing_query(
    app_id: uuid.UUID, *, status: JobStatus | None, job_type: str | None, before_seq: int | None, limit: int
) -> Select[Any]:
    """The statement behind ``listing`` (also EXPLAINed by ``bench/cost_curves.py``)."""
    query = _of_app(app_id)
    seq = jobs.c.seq
    if status is not None:
        state = watch_state(status)
        if state is not None:
            query = query.join(job_watch, job_watch.c.id == jobs.c.id).where(
                job_watch.c.app_id == app_id, job_watch.c.state == state
            )
            seq = job_watch.c.seq
        if state != status.value:  # else implied by the state (a second, correlated filter would make the
            query = query.where(jobs.c.status == status)  # planner expect no rows and sort them all)
    if job_type is not None:
        query = query.where(jobs.c.type == job_type)
    if before_seq is not None:
        query = query.where(seq < before_seq)
    return query.order_by(seq.desc()).limit(limit)


def watch_state(status: JobStatus) -> str | None:
    """The ``job_watch`` state of a job in ``status`` (``None``: not kept there)."""
    if status in WAITING:
        return "waiting"
    if status in (JobStatus.RUNNING, JobStatus.DEAD, JobStatus.FAILED):
        return str(status.value)
    return None


async def cancel(engine: AsyncEngine, app_id: uuid.UUID, job_id: uuid.UUID) -> JobRecord:
    """Cancel a job that has not started. Raises ``NotFound``, or ``Conflict`` once it runs or has finished."""
    with db_errors():
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.app_id == app_id, jobs.c.status.in_(WAITING))
                    .values(status=JobStatus.CANCELLED, finished_at=func.now(), next_retry_at=None)
                    .returning(*_RECORD_COLUMNS)
                )
            ).first()
            if row is not None:
                return _record(row)
            status = (
                await conn.execute(select(jobs.c.status).where(jobs.c.id == job_id, jobs.c.app_id == app_id))
            ).scalar()
    if status is None:
        raise NotFound("no such job")
    raise Conflict(f"a {status} job cannot be cancelled", details={"status": status})


async def counts_by_status_and_type(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    """``(status, type, count)`` over every job."""
    with db_errors():
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(jobs.c.status, jobs.c.type, func.count()).group_by(jobs.c.status, jobs.c.type)
            )
            return [(status, job_type, count) for status, job_type, count in rows]


def _of_app(app_id: uuid.UUID) -> Select[Any]:
    return select(*_RECORD_COLUMNS).where(jobs.c.app_id == app_id)
