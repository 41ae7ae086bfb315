"""Webhook deliveries and their attempts: what the delivery jobs read and record, and what apps list.

One delivery per (endpoint, event), made by the dispatcher (``db.outbox``). Its first attempt is made
by the endpoint's pump, which alone touches ``pending`` rows while it holds the endpoint's lease;
later attempts (``retrying``) are claimed one at a time with a short ``lease_until``, so two
messages for one delivery never POST at once. Outcomes are recorded with the attempt row in one
statement, conditional on the state the attempt was made from.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from satworks.db.engine import db_errors
from satworks.db.pages import Page, page_of
from satworks.db.schema import app_events
from satworks.db.webhook_endpoints import ENDPOINT_COLUMNS, EndpointRecord, endpoint_record
from satworks.db.webhook_tables import webhook_attempts, webhook_deliveries, webhook_endpoints
from satworks.errors import Conflict, NotFound
from satworks.webhooks.events import WebhookEvent, event_id
from satworks.webhooks.status import FINISHED, DeliveryStatus


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as apps see it (plus its listing position)."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    finished_at: datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    seq: int


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    started_at: datetime
    outcome: str
    status_code: int | None
    latency_ms: int
    response_head: str
    error: str | None


_COLUMNS = [webhook_deliveries.c[f.name] for f in dataclasses.fields(DeliveryRecord)]
_ATTEMPT_COLUMNS = [webhook_attempts.c[f.name] for f in dataclasses.fields(AttemptRecord)]


def _record(row: Any) -> DeliveryRecord:
    values = list(row)
    values[4] = DeliveryStatus(values[4])
    return DeliveryRecord(*values)


# --- the delivery jobs (async engine, the worker's event loop) ---------------------------------------------


@dataclass(frozen=True)
class Due:
    """A delivery about to be attempted: its event as sent, and its place in the retry window."""

    id: uuid.UUID
    event: WebhookEvent
    window_attempts: int
    window_started_at: datetime | None


@dataclass(frozen=True)
class Claimed:
    """A retry claimed for one attempt: ``lease`` is the ``lease_until`` it holds (its token)."""

    due: Due
    endpoint: EndpointRecord
    lease: datetime


@dataclass(frozen=True)
class Recorded:
    """One attempt's outcome, as ``record`` writes it."""

    id: uuid.UUID
    status: DeliveryStatus  # the delivery's new status
    outcome: str  # the attempt's: delivered, retry, failed
    started_at: datetime
    status_code: int | None
    latency_ms: int
    response_head: str
    error: str | None
    next_attempt_at: datetime | None = None
    lease: datetime | None = None  # the claim's lease, for a retry


def _due(row: Any) -> Due:
    event = WebhookEvent(event_id(row.event_id), row.type, row.event_created_at, row.data)
    return Due(row.id, event, row.window_attempts, row.window_started_at)


_DUE_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.window_attempts,
    webhook_deliveries.c.window_started_at,
    app_events.c.type,
    app_events.c.created_at.label("event_created_at"),
    app_events.c.data,
)


async def pending(conn: AsyncConnection, endpoint_id: uuid.UUID, limit: int) -> list[Due]:
    """The endpoint's deliveries waiting for their first attempt, oldest event first."""
    query = (
        select(*_DUE_COLUMNS)
        .join(app_events, app_events.c.id == webhook_deliveries.c.event_id)
        .where(webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == DeliveryStatus.PENDING)
        .order_by(webhook_deliveries.c.event_id)
        .limit(limit)
    )
    return [_due(row) for row in await conn.execute(query)]


async def has_pending(conn: AsyncConnection, endpoint_id: uuid.UUID) -> bool:
    query = select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == DeliveryStatus.PENDING
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def claim_retry(
    conn: AsyncConnection, delivery_id: uuid.UUID, *, lease_s: float, early_s: float = 1.0
) -> Claimed | None:
    """Claim a retry that is due (``early_s`` of clock slack), unleased, of a live endpoint; else None."""
    d = webhook_deliveries.c
    claimed = (
        update(webhook_deliveries)
        .where(
            d.id == delivery_id,
            d.status == DeliveryStatus.RETRYING,
            d.next_attempt_at <= func.now() + timedelta(seconds=early_s),
            d.lease_until.is_(None) | (d.lease_until < func.now()),
            webhook_endpoints.c.id == d.endpoint_id,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .values(lease_until=func.now() + timedelta(seconds=lease_s))
        .returning(d.lease_until)
    )
    lease = (await conn.execute(claimed)).scalar()
    if lease is None:
        return None
    query = (
        select(*_DUE_COLUMNS, *ENDPOINT_COLUMNS)
        .join(app_events, app_events.c.id == webhook_deliveries.c.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .where(webhook_deliveries.c.id == delivery_id)
    )
    row = (await conn.execute(query)).one()
    return Claimed(_due(row), endpoint_record(row[len(_DUE_COLUMNS) :]), lease)


async def lease_of(conn: AsyncConnection, delivery_id: uuid.UUID) -> datetime | None:
    """The lease of a retry whose attempt is in flight (or whose worker died), if any."""
    d = webhook_deliveries.c
    query = select(d.lease_until).where(
        d.id == delivery_id, d.status == DeliveryStatus.RETRYING, d.lease_until >= func.now()
    )
    value = (await conn.execute(query)).scalar()
    return value if isinstance(value, datetime) else None


RECORD = text(
    "WITH o AS (SELECT * FROM jsonb_to_recordset(CAST(:outcomes AS jsonb)) AS o(id uuid, status text,"
    " outcome text, started_at timestamptz, status_code int, latency_ms int, response_head text, error text,"
    " next_attempt_at timestamptz, lease timestamptz)),"
    " moved AS (UPDATE webhook_deliveries d SET status = o.status, attempts = d.attempts + 1,"
    " window_attempts = d.window_attempts + 1, window_started_at = coalesce(d.window_started_at, o.started_at),"
    " last_attempt_at = o.started_at, next_attempt_at = coalesce(o.next_attempt_at, d.next_attempt_at),"
    " finished_at = CASE WHEN o.status IN ('delivered', 'failed', 'dead') THEN now() END,"
    " last_status_code = o.status_code, last_latency_ms = o.latency_ms, last_error = o.error, lease_until = NULL"
    " FROM o WHERE d.id = o.id AND d.status = :expected AND (o.lease IS NULL OR d.lease_until = o.lease)"
    " RETURNING d.id, d.attempts)"
    " INSERT INTO webhook_attempts (delivery_id, attempt, started_at, outcome, status_code, latency_ms,"
    " response_head, error)"
    " SELECT o.id, m.attempts, o.started_at, o.outcome, o.status_code, o.latency_ms, o.response_head, o.error"
    " FROM o JOIN moved m ON m.id = o.id RETURNING delivery_id"
)
"""Outcomes of attempts made from status ``:expected`` (``pending`` by a pump, ``retrying`` under a
lease), with their attempt rows; a delivery that moved meanwhile (deleted endpoint) is left alone."""


async def record(conn: AsyncConnection, outcomes: Sequence[Recorded], *, expected: DeliveryStatus) -> set[uuid.UUID]:
    """Write ``outcomes``; returns the ids written."""
    if not outcomes:
        return set()
    document = orjson.dumps([dataclasses.asdict(o) for o in outcomes]).decode()
    rows = await conn.execute(RECORD, {"outcomes": document, "expected": str(expected)})
    return {row[0] for row in rows}


# --- the API (async engine) ------------------------------------------------------------------------------


async def listing(
    engine: AsyncEngine,
    app_id: uuid.UUID,
    *,
    status: DeliveryStatus | None,
    endpoint_id: uuid.UUID | None,
    before_seq: int | None,
    limit: int,
) -> Page[DeliveryRecord]:
    """The app's deliveries, newest first."""
    query = select(*_COLUMNS).where(webhook_deliveries.c.app_id == app_id)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    if endpoint_id is not None:
        query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    if before_seq is not None:
        query = query.where(webhook_deliveries.c.seq < before_seq)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(webhook_deliveries.c.seq.desc()).limit(limit + 1))).all()
    return page_of([_record(r) for r in rows], limit, lambda d: d.seq)


async def get(
    engine: AsyncEngine, app_id: uuid.UUID, delivery_id: uuid.UUID, *, attempts: int = 50
) -> tuple[DeliveryRecord, list[AttemptRecord]]:
    """A delivery and its latest ``attempts`` attempts (newest first); raises ``NotFound``."""
    with db_errors():
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_COLUMNS).where(
                        webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.app_id == app_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound("no such webhook delivery")
            tried = await conn.execute(
                select(*_ATTEMPT_COLUMNS)
                .where(webhook_attempts.c.delivery_id == delivery_id)
                .order_by(webhook_attempts.c.id.desc())
                .limit(attempts)
            )
            return _record(row), [AttemptRecord(*r) for r in tried]


async def redeliver(engine: AsyncEngine, app_id: uuid.UUID, delivery_id: uuid.UUID) -> DeliveryRecord:
    """Make a delivery due now with a fresh retry window (delivered, failed, dead or retrying ones).

    Raises ``NotFound``, or ``Conflict`` for one still waiting for its first attempt or whose endpoint
    was deleted."""
    d = webhook_deliveries.c
    statement = (
        update(webhook_deliveries)
        .where(
            d.id == delivery_id,
            d.app_id == app_id,
            d.status.in_((*FINISHED, DeliveryStatus.RETRYING)),
            webhook_endpoints.c.id == d.endpoint_id,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .values(
            status=DeliveryStatus.RETRYING,
            next_attempt_at=func.now(),
            window_started_at=None,
            window_attempts=0,
            finished_at=None,
        )
        .returning(*_COLUMNS)
    )
    with db_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(statement)).first()
            if row is not None:
                return _record(row)
            found = (
                await conn.execute(
                    select(d.status, webhook_endpoints.c.deleted_at)
                    .join(webhook_endpoints, webhook_endpoints.c.id == d.endpoint_id)
                    .where(d.id == delivery_id, d.app_id == app_id)
                )
            ).first()
    if found is None:
        raise NotFound("no such webhook delivery")
    if found.deleted_at is not None:
        raise Conflict("the delivery's endpoint was deleted", details={"status": found.status})
    raise Conflict("the delivery has not had its first attempt yet", details={"status": found.status})
