"""The reconciler's SQL: its epoch, the jobs it looks at, and its guarded repairs.

Candidates come from ``job_watch``, whose partial indexes hold only waiting (``job_watch_waiting``) or
running (``job_watch_running``) jobs, so a run over a table of finished jobs reads an index page or two. Every
repair is a conditional UPDATE that also names the generation and the attempt count the reconciler
saw: a job a worker claimed (or finished) since is left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, DateTime, String, Table, text
from sqlalchemy.dialects.postgresql import insert

from satworks.db.jobs import rows_json
from satworks.db.locks import AdvisoryLock
from satworks.db.schema import metadata
from satworks.jobs.status import WAITING, JobStatus, sql_list

RECONCILE_LOCK = AdvisoryLock.RECONCILE
EPOCH_NAME = "broker"

broker_epochs = Table(
    "broker_epochs",
    metadata,
    Column("broker", String(32), primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("wiped_at", DateTime(timezone=True)),  # a wipe was seen and its jobs are not all sent again yet
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

_WAITING = sql_list(WAITING)
_COLUMNS = "j.id, j.type, j.queue, j.status, j.max_retries, j.attempts, j.crashes, j.generation"


@dataclass(frozen=True)
class Candidate:
    """A job as the reconciler saw it; ``at`` is when it became due (waiting) or was claimed (running)."""

    id: uuid.UUID
    type: str
    queue: str
    status: JobStatus
    max_retries: int
    attempts: int
    crashes: int
    generation: int
    at: datetime


def try_lock(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": RECONCILE_LOCK}).scalar())


def epoch(conn: Connection) -> tuple[int | None, datetime | None]:
    """The stored epoch (``None`` before the first run) and when an unfinished recovery's wipe was seen."""
    row = conn.execute(text("SELECT epoch, wiped_at FROM broker_epochs WHERE broker = :b"), {"b": EPOCH_NAME}).first()
    return (int(row.epoch), row.wiped_at) if row is not None else (None, None)


def mark_wiped(conn: Connection) -> None:
    """Remember a wipe until every waiting job was sent again (a run that dies midway is resumed)."""
    conn.execute(
        text("UPDATE broker_epochs SET wiped_at = now(), updated_at = now() WHERE broker = :b"), {"b": EPOCH_NAME}
    )


def store_epoch(conn: Connection, value: int) -> None:
    """The epoch the broker now holds too; a recovery in progress is finished."""
    stmt = insert(broker_epochs).values(broker=EPOCH_NAME, epoch=value)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[broker_epochs.c.broker],
            set_={"epoch": value, "wiped_at": None, "updated_at": text("now()")},
        )
    )


WAITING_DUE = (
    f"SELECT {_COLUMNS}, w.at FROM job_watch w JOIN jobs j ON j.id = w.id"  # noqa: S608 - enum values, no input
    " WHERE w.state = 'waiting' AND w.at < %(before)s AND (w.at, w.id) > (%(after_at)s, %(after_id)s)"
    f" AND j.status IN {_WAITING} AND NOT EXISTS (SELECT 1 FROM jobs_unenqueued u WHERE u.id = j.id)"
    " ORDER BY w.at, w.id LIMIT %(limit)s"
)
"""Waiting jobs handed to the broker (no marker left in ``jobs_unenqueued``) due before ``before``, after
the keyset position, oldest first."""

RUNNING_SINCE = (
    f"SELECT {_COLUMNS}, w.at FROM job_watch w JOIN jobs j ON j.id = w.id"  # noqa: S608 - enum values, no input
    f" WHERE w.state = 'running' AND w.at < %(before)s AND j.status = '{JobStatus.RUNNING.value}'"
    " ORDER BY w.at LIMIT %(limit)s"
)
"""Running jobs claimed before ``before``, oldest claim first."""


def waiting_due(
    conn: Connection, before: datetime, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Candidate]:
    after_at, after_id = after if after is not None else (datetime.min.replace(tzinfo=before.tzinfo), uuid.UUID(int=0))
    params = {"before": before, "after_at": after_at, "after_id": after_id, "limit": limit}
    return [_candidate(row) for row in conn.exec_driver_sql(WAITING_DUE, params)]


def running_since(conn: Connection, before: datetime, *, limit: int) -> list[Candidate]:
    return [_candidate(row) for row in conn.exec_driver_sql(RUNNING_SINCE, {"before": before, "limit": limit})]


_SEEN = "FROM jsonb_to_recordset(%s::jsonb) AS s(id uuid, generation int, attempts int)"
_SEEN_MATCH = "jobs.id = s.id AND jobs.generation = s.generation AND jobs.attempts = s.attempts"

REQUEUE = (
    "UPDATE jobs SET generation = jobs.generation + 1 "  # noqa: S608 - enum values, no input
    + _SEEN
    + f" WHERE {_SEEN_MATCH} AND jobs.status IN {_WAITING}"
    " RETURNING jobs.id, jobs.generation"
)
"""Give waiting jobs, still as seen, a new generation (their old messages can no longer claim them)."""

KILL = (
    f"UPDATE jobs SET status = '{JobStatus.DEAD.value}', error_type = %s, error_message = %s,"  # noqa: S608
    " finished_at = now(), next_retry_at = NULL "
    + _SEEN
    + f" WHERE {_SEEN_MATCH} AND jobs.status = ANY(%s::text[]) RETURNING jobs.id"
)
"""``dead`` with an error, for jobs still as seen and in one of the given statuses."""


def requeue(conn: Connection, seen: Sequence[Candidate]) -> dict[uuid.UUID, int]:
    """New generations (id → generation) for the jobs of ``seen`` no one touched since."""
    if not seen:
        return {}
    rows = conn.exec_driver_sql(REQUEUE, (_seen_json(seen),))
    return {row.id: row.generation for row in rows}


def kill(
    conn: Connection, seen: Sequence[Candidate], statuses: frozenset[JobStatus], error_type: str, error_message: str
) -> list[uuid.UUID]:
    if not seen:
        return []
    rows = conn.exec_driver_sql(KILL, (error_type, error_message, _seen_json(seen), [s.value for s in statuses]))
    return [row.id for row in rows]


def _seen_json(seen: Sequence[Candidate]) -> str:
    return rows_json([{"id": c.id, "generation": c.generation, "attempts": c.attempts} for c in seen])


def _candidate(row: Any) -> Candidate:
    values = list(row)
    values[3] = JobStatus(values[3])
    return Candidate(*values)
