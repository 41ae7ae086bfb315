"""Creating and reading payment requests (the intake's side, async engine); webhook receipts.

The state moves the payment jobs make are in ``db.payments``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from satworks.db.engine import db_errors
from satworks.db.pages import Page, page_of
from satworks.db.payments import COUNTED, RECORD_COLUMNS, PaymentRecord, payment_record
from satworks.db.schema import payment_requests, payment_txs, webhook_receipts
from satworks.errors import Conflict, NotFound
from satworks.payments.status import PaymentStatus

Listed = tuple[PaymentRecord, list[str]]
"""A request and the txids paying it (oldest first; transactions the node no longer has left out)."""


@dataclass(frozen=True)
class NewPayment:
    """A payment request about to be inserted; the other columns keep their defaults."""

    id: uuid.UUID
    app_id: uuid.UUID
    method: str
    status: PaymentStatus
    amount_sat: int
    required_confirmations: int
    tolerance_pct: Decimal
    monitoring_s: int
    address: str | None
    address_supplied: bool
    memo: str | None
    metadata: dict[str, Any]
    idempotency_key: str | None
    request_hash: str
    created_at: datetime
    expires_at: datetime
    receipt_email: str | None = None


async def insert_request(engine: AsyncEngine, new: NewPayment) -> PaymentRecord | None:
    """Insert and commit; ``None`` when the app's idempotency key is taken already (nothing written).
    Raises ``Conflict`` when another request watches the same address."""
    values = {f.name: getattr(new, f.name) for f in dataclasses.fields(new)}
    statement = (
        insert(payment_requests)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[payment_requests.c.app_id, payment_requests.c.idempotency_key])
        .returning(*RECORD_COLUMNS)
    )
    with db_errors():
        async with engine.begin() as conn:
            try:
                row = (await conn.execute(statement)).first()
            except IntegrityError as exc:
                raise Conflict("this address is already watched by another payment request") from exc
    return payment_record(row) if row is not None else None


async def by_idempotency_key(engine: AsyncEngine, app_id: uuid.UUID, key: str) -> PaymentRecord | None:
    query = select(*RECORD_COLUMNS).where(
        payment_requests.c.app_id == app_id, payment_requests.c.idempotency_key == key
    )
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    return payment_record(row) if row is not None else None


async def delete_unstarted(engine: AsyncEngine, payment_id: uuid.UUID) -> None:
    """Undo a request whose first message never reached the broker (nothing was checked yet)."""
    with db_errors():
        async with engine.begin() as conn:
            await conn.execute(
                payment_requests.delete().where(
                    payment_requests.c.id == payment_id,
                    payment_requests.c.checks == 0,
                    payment_requests.c.checked_at.is_(None),
                )
            )


async def get(engine: AsyncEngine, app_id: uuid.UUID, payment_id: uuid.UUID) -> Listed | None:
    query = select(*RECORD_COLUMNS).where(payment_requests.c.id == payment_id, payment_requests.c.app_id == app_id)
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            txids = await _txids(conn, [payment_id])
    return payment_record(row), txids[payment_id]


async def listing(
    engine: AsyncEngine, app_id: uuid.UUID, *, status: PaymentStatus | None, before_seq: int | None, limit: int
) -> Page[Listed]:
    """The app's requests, newest first, optionally of one status."""
    query = select(*RECORD_COLUMNS).where(payment_requests.c.app_id == app_id)
    if status is not None:
        query = query.where(payment_requests.c.status == status)
    if before_seq is not None:
        query = query.where(payment_requests.c.seq < before_seq)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(payment_requests.c.seq.desc()).limit(limit + 1))).all()
            page = page_of([payment_record(r) for r in rows], limit, lambda p: p.seq)
            txids = await _txids(conn, [p.id for p in page.items]) if page.items else defaultdict(list)
    return Page([(p, txids[p.id]) for p in page.items], page.next_before)


async def counts_by_method_and_status(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    columns = (payment_requests.c.method, payment_requests.c.status)
    query = select(*columns, func.count()).group_by(*columns)
    with db_errors():
        async with engine.connect() as conn:
            return {(method, status): count for method, status, count in await conn.execute(query)}


async def record_webhook(engine: AsyncEngine, source: str, event_id: str, payment_id: uuid.UUID) -> None:
    """Store the receipt of an event about ``payment_id``. Raises ``NotFound`` for an unknown payment,
    ``Conflict`` for an event id seen before (a replay)."""
    with db_errors():
        async with engine.begin() as conn:
            if (
                await conn.execute(select(payment_requests.c.id).where(payment_requests.c.id == payment_id))
            ).first() is None:
                raise NotFound("no such payment")
            receipt = (
                insert(webhook_receipts)
                .values(source=source, event_id=event_id)
                .on_conflict_do_nothing()
                .returning(webhook_receipts.c.event_id)
            )
            if (await conn.execute(receipt)).first() is None:
                raise Conflict("event already received (replay)", details={"event_id": event_id})


async def forget_webhook(engine: AsyncEngine, source: str, event_id: str) -> None:
    """Forget a receipt, so the sender's retry is accepted (its event could not be acted on)."""
    with db_errors():
        async with engine.begin() as conn:
            await conn.execute(
                webhook_receipts.delete().where(
                    webhook_receipts.c.source == source, webhook_receipts.c.event_id == event_id
                )
            )


async def _txids(conn: AsyncConnection, payment_ids: Sequence[uuid.UUID]) -> defaultdict[uuid.UUID, list[str]]:
    query = (
        select(payment_txs.c.payment_id, payment_txs.c.txid)
        .where(payment_txs.c.payment_id.in_(payment_ids), payment_txs.c.state.in_(COUNTED))
        .order_by(payment_txs.c.received_at)
    )
    found: defaultdict[uuid.UUID, list[str]] = defaultdict(list)
    for payment_id, txid in await conn.execute(query):
        found[payment_id].append(txid)
    return found
