"""Reports: the aggregate queries (one statement per kind, ``GROUPING SETS``), the stored documents,
and what the API reads of a report (its ``report`` job, joined with its document).

Aggregation happens in Postgres: Python receives one row per group (status x method, type x
status, their subtotals and the total), never one per payment or job. A row of a subtotal or the
total has ``*`` in the columns it sums over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, ForeignKey, LargeBinary, String, Table, text
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.db.engine import db_errors
from satworks.db.schema import app_events, metadata
from satworks.jobs.status import JobStatus

REPORT_JOB_TYPE = "report"

reports = Table(
    "reports",
    metadata,
    Column("id", UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("format", String(8), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("filename", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

_PERIOD = "created_at >= :start AND created_at < :end"
_OF_APP = " AND app_id = :app_id"

PAYMENTS = (
    "SELECT CASE WHEN grouping(status) = 1 THEN '*' ELSE status END AS status,"
    " CASE WHEN grouping(method) = 1 THEN '*' ELSE method END AS method,"
    " count(*) AS count, coalesce(sum(amount_sat), 0)::bigint AS amount_sat,"
    " coalesce(sum(received_sat), 0)::bigint AS received_sat,"
    " percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - created_at))"
    " FILTER (WHERE settled_at IS NOT NULL) AS settle_s"
    " FROM payment_requests WHERE {scope}"
    " GROUP BY GROUPING SETS ((status, method), (method), ())"
    " ORDER BY grouping(status, method), method, status"
)
"""Payment requests created in the period: count, amounts due and received (sat), and the 50th, 90th
and 99th percentile of creation → settlement (seconds) over those that settled."""

_OUTCOMES = f"('{JobStatus.SUCCEEDED.value}', '{JobStatus.FAILED.value}', '{JobStatus.DEAD.value}')"
_FAILURES = f"('{JobStatus.FAILED.value}', '{JobStatus.DEAD.value}')"
JOBS = (
    "SELECT CASE WHEN grouping(type) = 1 THEN '*' ELSE type END AS type,"  # noqa: S608 - enum values, no input
    " CASE WHEN grouping(status) = 1 THEN '*' ELSE status END AS status,"
    " count(*) AS count,"
    f" count(*) FILTER (WHERE status IN {_FAILURES}) AS failures,"
    f" count(*) FILTER (WHERE status IN {_OUTCOMES}) AS outcomes,"
    " percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))"
    " FILTER (WHERE finished_at IS NOT NULL AND started_at IS NOT NULL) AS duration_s"
    " FROM jobs WHERE {scope}"
    " GROUP BY GROUPING SETS ((type, status), (type), ())"
    " ORDER BY grouping(type, status), type, status"
)
"""Jobs created in the period: count per type and status; per type and overall, failures (failed +
dead) over outcomes (succeeded + failed + dead); p50 and p95 of first start → finish (seconds)."""


def payments(conn: Connection, start: datetime, end: datetime, app_id: uuid.UUID | None) -> list[Any]:
    """``PAYMENTS`` over one app's requests, or every app's (``app_id`` None)."""
    return _aggregate(conn, PAYMENTS, start, end, app_id)


def jobs(conn: Connection, start: datetime, end: datetime, app_id: uuid.UUID | None) -> list[Any]:
    """``JOBS`` over one app's jobs, or every app's (``app_id`` None)."""
    return _aggregate(conn, JOBS, start, end, app_id)


def _aggregate(conn: Connection, sql: str, start: datetime, end: datetime, app_id: uuid.UUID | None) -> list[Any]:
    scope = _PERIOD + (_OF_APP if app_id is not None else "")
    return list(conn.execute(text(sql.format(scope=scope)), {"start": start, "end": end, "app_id": app_id}))


def owner(conn: Connection, job_id: uuid.UUID) -> uuid.UUID | None:
    """The app a report job belongs to."""
    value = conn.execute(text("SELECT app_id FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
    return value if isinstance(value, uuid.UUID) else None


def store(
    conn: Connection,
    report_id: uuid.UUID,
    app_id: uuid.UUID,
    *,
    kind: str,
    fmt: str,
    content: bytes,
    content_type: str,
    filename: str,
    event: dict[str, Any],
) -> bool:
    """Store the document (a second run of the job keeps the first) and, the first time, queue the
    app event ``report.ready`` in the same transaction. True if stored now."""
    stmt = (
        insert(reports)
        .values(
            id=report_id,
            app_id=app_id,
            kind=kind,
            format=fmt,
            content=content,
            content_type=content_type,
            filename=filename,
        )
        .on_conflict_do_nothing(index_elements=[reports.c.id])
        .returning(reports.c.id)
    )
    if conn.execute(stmt).first() is None:
        return False
    conn.execute(app_events.insert().values(app_id=app_id, type="report.ready", subject_id=report_id, data=event))
    return True


_DAILY_ADDRESS = (
    "SELECT a.report_email FROM jobs j JOIN apps a ON a.id = j.app_id"
    " WHERE j.id = :id AND starts_with(j.idempotency_key, :prefix)"
    " AND a.report_email IS NOT NULL AND a.revoked_at IS NULL"
)


def daily_address(conn: Connection, report_id: uuid.UUID, key_prefix: str) -> str | None:
    """Where a daily report is emailed: its app's ``report_email``, if the report's job is one the daily
    task asked for (its idempotency key starts with ``key_prefix``) and the app gave an address."""
    value = conn.execute(text(_DAILY_ADDRESS), {"id": report_id, "prefix": key_prefix}).scalar()
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ReportRecord:
    """A report as the API shows it: its job and, once built, its document's description."""

    id: uuid.UUID
    job_status: JobStatus
    spec: dict[str, Any]
    error_type: str | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None
    content_type: str | None
    filename: str | None
    size_bytes: int | None


_RECORD = (
    "SELECT j.id, j.status, j.payload, j.error_type, j.error_message, j.created_at, j.finished_at,"
    " r.content_type, r.filename, octet_length(r.content) AS size_bytes"
    " FROM jobs j LEFT JOIN reports r ON r.id = j.id"
    " WHERE j.id = :id AND j.app_id = :app_id AND j.type = :type"
)


async def get(engine: AsyncEngine, app_id: uuid.UUID, report_id: uuid.UUID) -> ReportRecord | None:
    with db_errors():
        async with engine.connect() as conn:
            row = (
                await conn.execute(text(_RECORD), {"id": report_id, "app_id": app_id, "type": REPORT_JOB_TYPE})
            ).first()
    if row is None:
        return None
    values = list(row)
    values[1] = JobStatus(values[1])
    return ReportRecord(*values)


async def document(engine: AsyncEngine, app_id: uuid.UUID, report_id: uuid.UUID) -> tuple[bytes, str, str] | None:
    """``(content, content type, file name)`` of the app's finished report."""
    query = text("SELECT content, content_type, filename FROM reports WHERE id = :id AND app_id = :app_id")
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query, {"id": report_id, "app_id": app_id})).first()
    return (bytes(row.content), row.content_type, row.filename) if row is not None else None
