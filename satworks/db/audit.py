"""The audit trail: one append-only table for what operators must be able to reconstruct later.

Rows are written in the same transaction as the change they record (keys, requeues, payment states),
so a change and its row commit together. The table refuses UPDATE, DELETE and TRUNCATE in the
database itself (a trigger, migration ``0010_audit``), so no code path can rewrite history. Rows name
apps, ids, client addresses and causes; never a key, secret, macaroon or payment address.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.audit import AuditKind
from satworks.db.engine import db_errors
from satworks.db.pages import Page, page_of
from satworks.db.schema import apps, audit_events

CLI = "cli"  # the actor of operator commands run on the host
SYSTEM = "satworks"  # the actor of the platform's own moves (payment checks)
ANONYMOUS = "anonymous"  # the actor of a request whose key did not authenticate


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    kind: AuditKind
    app: str | None
    actor: str
    subject_id: uuid.UUID | None
    client_address: str | None
    data: dict[str, Any]
    created_at: datetime


def values(
    kind: AuditKind,
    *,
    actor: str,
    app_id: Any = None,
    subject_id: uuid.UUID | None = None,
    client_address: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row's values; ``app_id`` may be a scalar subquery (a payment's app)."""
    return {
        "kind": kind.value,
        "actor": actor[:64],
        "app_id": app_id,
        "subject_id": subject_id,
        "client_address": client_address[:64] if client_address else None,
        "data": data or {},
    }


def entry(kind: AuditKind, **fields: Any) -> Insert:
    """The INSERT of one row (see ``values``)."""
    return insert(audit_events).values(**values(kind, **fields))


def entries() -> Insert:
    """The INSERT of many rows, executed with a list of ``values``."""
    return insert(audit_events)


def record(conn: Connection, kind: AuditKind, **fields: Any) -> None:
    """Write one row inside the caller's transaction (see ``entry`` for the fields)."""
    conn.execute(entry(kind, **fields))


async def record_failed_auth(engine: AsyncEngine, client_address: str, reason: str) -> None:
    """A request that did not authenticate: where it came from and why, nothing of what it presented."""
    with db_errors():
        async with engine.begin() as conn:
            await conn.execute(
                entry(AuditKind.AUTH_FAILED, actor=ANONYMOUS, client_address=client_address, data={"reason": reason})
            )


async def listing(
    engine: AsyncEngine,
    *,
    since: datetime | None,
    kind: AuditKind | None,
    app_name: str | None,
    before_id: int | None,
    limit: int,
) -> Page[AuditEntry]:
    """Rows newest first, filtered by time (``created_at >= since``), kind and app name."""
    query = select(
        audit_events.c.id,
        audit_events.c.kind,
        apps.c.name,
        audit_events.c.actor,
        audit_events.c.subject_id,
        audit_events.c.client_address,
        audit_events.c.data,
        audit_events.c.created_at,
    ).select_from(audit_events.outerjoin(apps, apps.c.id == audit_events.c.app_id))
    if since is not None:
        query = query.where(audit_events.c.created_at >= since)
    if kind is not None:
        query = query.where(audit_events.c.kind == kind.value)
    if app_name is not None:
        query = query.where(apps.c.name == app_name)
    if before_id is not None:
        query = query.where(audit_events.c.id < before_id)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(audit_events.c.id.desc()).limit(limit + 1))).all()
    entries = [AuditEntry(r[0], AuditKind(r[1]), *r[2:]) for r in rows]
    return page_of(entries, limit, lambda e: e.id)
