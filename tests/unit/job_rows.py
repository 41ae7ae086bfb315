"""Job rows for the in-process tests: built the way the intake builds them, stored and read back directly."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select, update

from satworks.db import jobs as q
from satworks.db.jobs import NewJob
from satworks.db.schema import jobs
from satworks.jobs.request import JobIn
from satworks.jobs.submission import job_row


def new_row(app_id: uuid.UUID, prefix: str, *, key: str | None = None, **body: Any) -> NewJob:
    """A queued job row as the intake would store it (``body``: fields of a job request, type canary)."""
    row, _ = job_row(
        JobIn.model_validate({"type": "canary", **body}), app_id=app_id, idempotency_key=key, queue_prefix=prefix
    )
    return row


def store(db: Engine, row: NewJob, **columns: Any) -> uuid.UUID:
    """INSERT ``row`` (then set ``columns``, e.g. ``status="running"``) and return its id."""
    with db.begin() as conn:
        conn.exec_driver_sql(q.INSERT_BATCH, (q.rows_json([row]),))
        if columns:
            conn.execute(update(jobs).where(jobs.c.id == row.id).values(**columns))
    job_id: uuid.UUID = row.id
    return job_id


def read(db: Engine, job_id: uuid.UUID) -> dict[str, Any] | None:
    with db.connect() as conn:
        found = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return dict(found) if found is not None else None


def rows_with_key(db: Engine, app_id: uuid.UUID, key: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        found = conn.execute(select(jobs).where(jobs.c.app_id == app_id, jobs.c.idempotency_key == key)).mappings()
        return [dict(r) for r in found]
