"""The outbox: ``app_events`` rows turned into webhook deliveries (and receipts), and what sweeps revive.

Whoever writes events (payment checks, the job status writer, draws, reports) only inserts rows into
``app_events`` in its own transaction; a trigger NOTIFYs ``satworks_app_events`` when that
transaction commits. The dispatcher (``jobs/outbox.py``) then fans every undispatched event out, in
event order, one dispatcher at a time (a transaction-level advisory lock): one delivery per
subscribed endpoint, unique per (endpoint, event), and ``delivered_at`` (here: handed over to
delivery) set in the same transaction, so an event is fanned out once whoever dispatches and however often.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, text, update

from satworks.db.locks import AdvisoryLock
from satworks.db.schema import app_events, payment_requests
from satworks.db.webhook_tables import webhook_deliveries, webhook_endpoints
from satworks.webhooks.status import DeliveryStatus

CHANNEL = "satworks_app_events"
DISPATCH_LOCK = AdvisoryLock.OUTBOX_DISPATCH
SETTLED = "payment.settled"


@dataclass(frozen=True)
class Event:
    id: int
    app_id: uuid.UUID
    type: str
    subject_id: uuid.UUID
    data: dict[str, Any]


def lock_dispatch(conn: Connection, *, timeout_s: float = 10.0) -> None:
    """Wait (at most ``timeout_s``) for the dispatch lock, held until the transaction ends."""
    conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
    conn.execute(select(func.pg_advisory_xact_lock(DISPATCH_LOCK)))


def undispatched(conn: Connection, limit: int) -> list[Event]:
    query = (
        select(app_events.c.id, app_events.c.app_id, app_events.c.type, app_events.c.subject_id, app_events.c.data)
        .where(app_events.c.delivered_at.is_(None))
        .order_by(app_events.c.id)
        .limit(limit)
    )
    return [Event(*row) for row in conn.execute(query)]


FAN_OUT = text(
    "INSERT INTO webhook_deliveries (id, app_id, endpoint_id, event_id, event_type, status)"
    " SELECT gen_random_uuid(), ev.app_id, ep.id, ev.id, ev.type, :pending"
    " FROM app_events ev JOIN webhook_endpoints ep ON ep.app_id = ev.app_id AND ep.deleted_at IS NULL"
    " AND ep.events && ARRAY['*', split_part(ev.type, '.', 1) || '.*', ev.type]"
    " WHERE ev.id = ANY(:ids) ORDER BY ev.id"
    " ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING endpoint_id"
)
"""One delivery per endpoint subscribed to the event (``*``, its family ``payment.*`` or its type),
in event order; those made before are skipped."""


def fan_out(conn: Connection, event_ids: Sequence[int]) -> set[uuid.UUID]:
    """Create the deliveries of ``event_ids``; returns the endpoints that got some."""
    rows = conn.execute(FAN_OUT, {"ids": list(event_ids), "pending": str(DeliveryStatus.PENDING)})
    return {row[0] for row in rows}


def mark_dispatched(conn: Connection, event_ids: Sequence[int]) -> None:
    conn.execute(update(app_events).where(app_events.c.id.in_(event_ids)).values(delivered_at=func.now()))


@dataclass(frozen=True)
class ReceiptDue:
    """A settled payment whose app asked for a receipt."""

    payment_id: uuid.UUID
    app_id: uuid.UUID
    receipt_email: str
    amount_sat: int
    received_sat: int
    memo: str | None


def receipts_due(conn: Connection, events: Sequence[Event]) -> list[ReceiptDue]:
    settled = [e.subject_id for e in events if e.type == SETTLED]
    if not settled:
        return []
    p = payment_requests.c
    rows = conn.execute(
        select(p.id, p.app_id, p.receipt_email, p.amount_sat, p.received_sat, p.memo).where(
            p.id.in_(settled), p.receipt_email.is_not(None)
        )
    )
    return [ReceiptDue(*row) for row in rows]


# --- what the sweep revives -----------------------------------------------------------------------------


def stalled_endpoints(conn: Connection, older_than: datetime, limit: int) -> list[uuid.UUID]:
    """Endpoints with a delivery pending since before ``older_than`` and no pump holding their lease."""
    d, ep = webhook_deliveries.c, webhook_endpoints.c
    query = (
        select(d.endpoint_id)
        .join(webhook_endpoints, ep.id == d.endpoint_id)
        .where(
            d.status == DeliveryStatus.PENDING,
            d.created_at < older_than,
            ep.deleted_at.is_(None),
            ep.pump_until.is_(None) | (ep.pump_until < func.now()),
        )
        .distinct()
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def stalled_retries(conn: Connection, older_than: datetime, limit: int) -> list[uuid.UUID]:
    """Retries overdue since before ``older_than`` with no attempt in flight (their message was lost)."""
    d = webhook_deliveries.c
    query = (
        select(d.id)
        .where(
            d.status == DeliveryStatus.RETRYING,
            d.next_attempt_at < older_than,
            d.lease_until.is_(None) | (d.lease_until < func.now()),
        )
        .order_by(d.next_attempt_at)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())
