"""Draw records, and the intake's and the API's side of them (async engine).

Recording a draw writes its row, its frozen entries and the commit's audit row in one transaction (an
idempotency key taken already inserts nothing); ``mark_checked`` then stores the node's tip read after
that commit, with the ``draw.committed`` app event. The jobs' guarded
state moves and the one result are in ``db.draw_states``.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.db.draw_tables import draw_audit, draw_entries, draw_results, draws
from satworks.db.engine import db_errors
from satworks.db.pages import Page, page_of
from satworks.db.schema import app_events
from satworks.draws.status import COMMITTED_EVENT, DrawStatus


@dataclass(frozen=True, slots=True)
class DrawRecord:
    """A stored draw (every column of ``draws``) and, once completed, its winners."""

    id: uuid.UUID
    app_id: uuid.UUID
    raffle_id: str
    status: DrawStatus
    status_reason: str | None
    algorithm: str
    commitment: str
    network: str
    beacon_height: int
    required_confirmations: int
    k: int
    entries_count: int
    total_tickets: int
    metadata: dict[str, Any]
    notify: bool
    public_token: str
    idempotency_key: str | None
    request_hash: str
    created_at: datetime
    block_hash: str | None
    block_confirmations: int | None
    checked_at: datetime | None
    completed_at: datetime | None
    checked_tip: int | None  # the node's tip the intake read after the commit (below the beacon height)
    seq: int
    winners: list[dict[str, Any]] | None = None  # [{"id", "ticket"}] in draw order, from ``draw_results``


@dataclass(frozen=True)
class NewDraw:
    """A draw about to be recorded as ``committed``."""

    id: uuid.UUID
    app_id: uuid.UUID
    raffle_id: str
    algorithm: str
    commitment: str
    network: str
    beacon_height: int
    required_confirmations: int
    k: int
    entries_count: int
    total_tickets: int
    metadata: dict[str, Any]
    notify: bool
    public_token: str
    idempotency_key: str | None
    request_hash: str
    created_at: datetime
    packed_entries: bytes
    packed_emails: bytes | None
    emails_count: int


_DRAW_FIELDS = [f.name for f in dataclasses.fields(DrawRecord) if f.name != "winners"]
RECORD_COLUMNS = [draws.c[name] for name in _DRAW_FIELDS]
_WITH_WINNERS = select(*RECORD_COLUMNS, draw_results.c.winners).select_from(
    draws.outerjoin(draw_results, draw_results.c.draw_id == draws.c.id)
)


def draw_record(row: Any) -> DrawRecord:
    """A record from a row of ``RECORD_COLUMNS`` (and, optionally, ``draw_results.winners``)."""
    values = row._asdict()
    values["status"] = DrawStatus(values["status"])
    return DrawRecord(**values)


async def insert_draw(engine: AsyncEngine, new: NewDraw) -> DrawRecord | None:
    """Record ``new`` as committed, with its entries and audit row (the event follows ``mark_checked``).

    Returns None when the app's idempotency key is taken (nothing is written)."""
    values = {f.name: getattr(new, f.name) for f in dataclasses.fields(NewDraw)}
    packed, emails, emails_count = values.pop("packed_entries"), values.pop("packed_emails"), values.pop("emails_count")
    stmt = (
        pg_insert(draws)
        .values(status=DrawStatus.COMMITTED, **values)
        .on_conflict_do_nothing(index_elements=[draws.c.app_id, draws.c.idempotency_key])
        .returning(*RECORD_COLUMNS)
    )
    with db_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            record = draw_record(row)
            await conn.execute(
                insert(draw_entries).values(draw_id=new.id, entries=packed, emails=emails, emails_count=emails_count)
            )
            await conn.execute(
                insert(draw_audit).values(
                    draw_id=new.id, from_status=None, to_status=DrawStatus.COMMITTED, reason="entries committed"
                )
            )
    return record


async def mark_checked(engine: AsyncEngine, draw: DrawRecord, tip: int) -> DrawRecord:
    """The node's tip, read after the commit, is below the beacon height: remember it (the draw job
    trusts it) and tell the app the draw is committed."""
    with db_errors():
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    update(draws)
                    .where(draws.c.id == draw.id, draws.c.status == DrawStatus.COMMITTED)
                    .values(checked_tip=tip)
                    .returning(*RECORD_COLUMNS)
                )
            ).first()
            if row is None:  # the job got there first: it asked the node itself
                return draw
            await conn.execute(
                insert(app_events).values(
                    app_id=draw.app_id, type=COMMITTED_EVENT, subject_id=draw.id, data=committed_event(draw)
                )
            )
    return draw_record(row)


def public_path(token: str) -> str:
    """The path of a draw's public page, relative to the service's public address."""
    return f"/p/draws/{token}"


def committed_event(draw: DrawRecord) -> dict[str, Any]:
    return {
        "draw_id": str(draw.id),
        "raffle_id": draw.raffle_id,
        "status": str(DrawStatus.COMMITTED),
        "commitment": draw.commitment,
        "beacon": {"type": "bitcoin_block", "network": draw.network, "height": draw.beacon_height},
    }


async def delete_unstarted(engine: AsyncEngine, draw_id: uuid.UUID) -> None:
    """Undo a draw the intake could not finish (the beacon height reached, the node or the broker down):
    it is still ``committed``, and no job has moved it."""
    with db_errors():
        async with engine.begin() as conn:
            gone = await conn.execute(
                delete(draws).where(draws.c.id == draw_id, draws.c.status == DrawStatus.COMMITTED).returning(draws.c.id)
            )
            if gone.first() is not None:
                await conn.execute(delete(app_events).where(app_events.c.subject_id == draw_id))


async def by_idempotency_key(engine: AsyncEngine, app_id: uuid.UUID, key: str) -> DrawRecord | None:
    query = _WITH_WINNERS.where(draws.c.app_id == app_id, draws.c.idempotency_key == key)
    return await _one(engine, query)


async def get(engine: AsyncEngine, app_id: uuid.UUID, draw_id: uuid.UUID) -> DrawRecord | None:
    return await _one(engine, _WITH_WINNERS.where(draws.c.app_id == app_id, draws.c.id == draw_id))


async def by_token(engine: AsyncEngine, token: str) -> DrawRecord | None:
    """The draw behind a public link (any app's: the token is the capability)."""
    return await _one(engine, _WITH_WINNERS.where(draws.c.public_token == token))


async def listing(
    engine: AsyncEngine,
    app_id: uuid.UUID,
    *,
    raffle_id: str | None,
    status: DrawStatus | None,
    before_seq: int | None,
    limit: int,
) -> Page[DrawRecord]:
    """The app's draws, newest first, optionally of one raffle and one status."""
    query = _WITH_WINNERS.where(draws.c.app_id == app_id)
    if raffle_id is not None:
        query = query.where(draws.c.raffle_id == raffle_id)
    if status is not None:
        query = query.where(draws.c.status == status)
    if before_seq is not None:
        query = query.where(draws.c.seq < before_seq)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(draws.c.seq.desc()).limit(limit + 1))).all()
    return page_of([draw_record(r) for r in rows], limit, lambda d: d.seq)


async def proof_gz(engine: AsyncEngine, draw_id: uuid.UUID) -> bytes | None:
    """The completed draw's proof document, gzip-compressed as stored; None before completion."""
    with db_errors():
        async with engine.connect() as conn:
            value = (
                await conn.execute(select(draw_results.c.proof_gz).where(draw_results.c.draw_id == draw_id))
            ).scalar()
    return bytes(value) if value is not None else None


async def _one(engine: AsyncEngine, query: Any) -> DrawRecord | None:
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    return draw_record(row) if row is not None else None
