"""The scheduler's state: one row per task, one row per submitted slot, and who holds the leader lock.

``schedule_runs`` is unique on ``(task, fire_at)``: a slot is recorded once, whoever submits it.
``schedules`` keeps what ``GET /v1/schedules`` and the gauges show: the last slot submitted, the
outcome of the last finished run, the next slot. ``job_id`` has no foreign key, so retention may
delete old jobs without touching the scheduler's history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Index,
    String,
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, insert

from satworks.db.schema import metadata, one_of
from satworks.jobs.status import FINISHED, JobStatus, sql_list

LEADER_LOCK = (0x5357, 0x5C4E)
"""The session-level advisory lock of the leader: ``pg_try_advisory_lock(classid, objid)``."""

schedules = Table(
    "schedules",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("spec", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("last_run_at", DateTime(timezone=True)),  # the slot of the latest submitted run
    Column("last_job_id", UUID(as_uuid=True)),
    Column("last_status", String(16)),  # the outcome of the run that finished last
    Column("last_success_at", DateTime(timezone=True)),  # when the latest successful run finished
    Column("next_run_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(f"last_status IS NULL OR {one_of('last_status', JobStatus)}", name="schedules_last_status"),
)

schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("fire_at", DateTime(timezone=True), primary_key=True),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16)),  # NULL until the job has finished
    Column("finished_at", DateTime(timezone=True)),
    CheckConstraint(f"status IS NULL OR {one_of('status', JobStatus)}", name="schedule_runs_status"),
    Index("schedule_runs_pending", "submitted_at", postgresql_where=text("status IS NULL")),
)


@dataclass(frozen=True)
class Outcome:
    """A scheduled run whose job has finished, as first seen by ``collect_outcomes``."""

    task: str
    fire_at: datetime
    status: str
    created_at: datetime
    finished_at: datetime


def sync(conn: Connection, specs: dict[str, tuple[str, bool]]) -> None:
    """Store each task's spec and whether it is enabled; a disabled task has no next run."""
    for task, (spec, enabled) in specs.items():
        stmt = insert(schedules).values(task=task, spec=spec, enabled=enabled)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[schedules.c.task],
                set_={
                    "spec": stmt.excluded.spec,
                    "enabled": stmt.excluded.enabled,
                    "next_run_at": None if not enabled else schedules.c.next_run_at,
                    "updated_at": func.now(),
                },
            )
        )


def last_runs(conn: Connection) -> dict[str, datetime]:
    rows = conn.execute(select(schedules.c.task, schedules.c.last_run_at).where(schedules.c.last_run_at.is_not(None)))
    return {task: at for task, at in rows}


def set_next_run(conn: Connection, task: str, next_run_at: datetime | None) -> None:
    conn.execute(
        update(schedules).where(schedules.c.task == task).values(next_run_at=next_run_at, updated_at=func.now())
    )


def record_run(
    conn: Connection,
    task: str,
    fire_at: datetime,
    job_id: uuid.UUID,
    *,
    submitted_at: datetime,
    next_run_at: datetime | None,
) -> bool:
    """Record a submitted slot (once) and move the task's ``last_run_at`` forward. True if new."""
    new = conn.execute(
        insert(schedule_runs)
        .values(task=task, fire_at=fire_at, job_id=job_id, submitted_at=submitted_at)
        .on_conflict_do_nothing(index_elements=[schedule_runs.c.task, schedule_runs.c.fire_at])
        .returning(schedule_runs.c.job_id)
    ).first()
    later = schedules.c.last_run_at.is_(None) | (schedules.c.last_run_at <= fire_at)
    conn.execute(
        update(schedules)
        .where(schedules.c.task == task, later)
        .values(last_run_at=fire_at, last_job_id=job_id, next_run_at=next_run_at, updated_at=func.now())
    )
    return new is not None


COLLECT_OUTCOMES = (
    "WITH pending AS ("  # noqa: S608 - enum values, no input
    "  SELECT task, fire_at FROM schedule_runs WHERE status IS NULL ORDER BY submitted_at LIMIT %(limit)s"
    "), done AS ("
    "  UPDATE schedule_runs r SET status = j.status, finished_at = j.finished_at"
    "  FROM pending p, jobs j"
    "  WHERE r.task = p.task AND r.fire_at = p.fire_at AND j.id = r.job_id"
    f"  AND j.status IN {sql_list(FINISHED)}"
    "  RETURNING r.task, r.fire_at, j.status, j.created_at, j.finished_at"
    "), latest AS ("
    "  SELECT DISTINCT ON (task) task, status FROM done ORDER BY task, finished_at DESC, fire_at DESC"
    "), success AS ("
    f"  SELECT task, max(finished_at) AS at FROM done WHERE status = '{JobStatus.SUCCEEDED.value}' GROUP BY task"
    "), moved AS ("
    "  UPDATE schedules s SET last_status = l.status,"
    "  last_success_at = greatest(s.last_success_at, ok.at), updated_at = now()"
    "  FROM latest l LEFT JOIN success ok ON ok.task = l.task"
    "  WHERE s.task = l.task"
    ") SELECT task, fire_at, status, created_at, finished_at FROM done"
)


def collect_outcomes(conn: Connection, *, limit: int = 500) -> list[Outcome]:
    """Copy the outcome of runs whose jobs finished since the last call onto the runs and their tasks.

    Bounded: the oldest ``limit`` pending runs (a partial index holds only pending ones). A task's
    ``last_status`` is the outcome of its run that finished last; ``last_success_at`` only moves forward.
    """
    rows = conn.exec_driver_sql(COLLECT_OUTCOMES, {"limit": limit})
    return [Outcome(*row) for row in rows]


def snapshot(conn: Connection) -> Sequence[Any]:
    """Every task's row, for the gauges and (later) ``GET /v1/schedules``."""
    return conn.execute(select(schedules).order_by(schedules.c.task)).mappings().all()


def leader(conn: Connection) -> str | None:
    """The ``application_name`` of the session holding the leader lock, if any."""
    return conn.execute(
        text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = :classid AND l.objid = :objid AND l.objsubid = 2"
        ),
        {"classid": LEADER_LOCK[0], "objid": LEADER_LOCK[1]},
    ).scalar()
