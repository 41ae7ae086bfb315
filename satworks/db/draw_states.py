"""The draw job's guarded state moves and the one result (sync engine, worker side).

Every move is a compare-and-set on the status the job read (``UPDATE … WHERE status = :seen``), so a
duplicate or late job changes nothing; each one writes its audit row (and its app event) in the same
transaction. The result is an ``INSERT … ON CONFLICT DO NOTHING`` keyed on the draw id: whatever
runs at once, crashes or retries, a draw has at most one result, and it is never rewritten (a
trigger refuses updates).
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from satworks.db.draw_tables import draw_audit, draw_entries, draw_results, draws
from satworks.db.draws import RECORD_COLUMNS, DrawRecord, draw_record, public_path
from satworks.db.schema import app_events
from satworks.draws.entries import CanonicalEntries
from satworks.draws.packed import unpack_entries
from satworks.draws.status import EVENT_FOR_STATUS, DrawStatus, check_transition


@dataclass(frozen=True)
class DrawResult:
    """What a completed draw stores: the beacon block, the winners in order, the proof (gzip JSON)."""

    block_hash: str
    confirmations: int
    winners: list[dict[str, Any]]  # [{"id", "ticket"}]
    proof_gz: bytes


@dataclass(frozen=True)
class WinnerNotice:
    """A winner to email (a draw with ``notify``): ``jobs.draws.queue_winner_emails`` makes its ``draw_won`` email."""

    draw_id: uuid.UUID
    app_id: uuid.UUID
    raffle_id: str
    rank: int  # 1-based, in draw order
    entry_id: str
    ticket: int
    email: str
    public_token: str
    metadata: dict[str, Any]


def load(conn: Connection, draw_id: uuid.UUID) -> DrawRecord | None:
    row = conn.execute(select(*RECORD_COLUMNS).where(draws.c.id == draw_id)).first()
    return draw_record(row) if row is not None else None


def frozen_entries(conn: Connection, draw_id: uuid.UUID) -> CanonicalEntries:
    packed = conn.execute(select(draw_entries.c.entries).where(draw_entries.c.draw_id == draw_id)).scalar_one()
    return unpack_entries(bytes(packed))


def due(conn: Connection, network: str, tip: int) -> list[uuid.UUID]:
    """Open draws a job should look at now: committed ones (the node has not been asked yet) and those
    whose beacon height the chain has reached."""
    rows = conn.execute(
        select(draws.c.id)
        .where(
            draws.c.network == network,
            or_(
                draws.c.status == DrawStatus.COMMITTED,
                and_(draws.c.status.in_((DrawStatus.WAITING, DrawStatus.CONFIRMING)), draws.c.beacon_height <= tip),
            ),
        )
        .order_by(draws.c.beacon_height)
    )
    return [row.id for row in rows]


def move(
    conn: Connection,
    draw: DrawRecord,
    target: DrawStatus,
    *,
    reason: str,
    now: datetime,
    block_hash: str | None = None,
    confirmations: int | None = None,
) -> bool:
    """Move ``draw`` from the status it was read with to ``target`` (never to completed: see
    ``complete``). False when another job moved it first."""
    check_transition(draw.status, target)
    done = conn.execute(
        update(draws)
        .where(draws.c.id == draw.id, draws.c.status == draw.status, _same_block(draw.block_hash))
        .values(
            status=target,
            status_reason=reason,
            block_hash=block_hash,
            block_confirmations=confirmations,
            checked_at=now,
        )
    )
    if not done.rowcount:
        return False
    _audit(conn, draw.id, draw.status, target, reason, block_hash, confirmations)
    if target in EVENT_FOR_STATUS:
        data = {"draw_id": str(draw.id), "raffle_id": draw.raffle_id, "status": str(target), "reason": reason}
        add_event(conn, draw, EVENT_FOR_STATUS[target], data)
    return True


def add_event(conn: Connection, draw: DrawRecord, kind: str, data: dict[str, Any]) -> None:
    conn.execute(insert(app_events).values(app_id=draw.app_id, type=kind, subject_id=draw.id, data=data))


def note_confirmations(conn: Connection, draw: DrawRecord, confirmations: int, now: datetime) -> None:
    """The beacon block seen before has ``confirmations`` now (not a state change: no audit row)."""
    conn.execute(
        update(draws)
        .where(draws.c.id == draw.id, draws.c.status == draw.status, _same_block(draw.block_hash))
        .values(block_confirmations=confirmations, checked_at=now)
    )


def complete(
    conn: Connection,
    draw: DrawRecord,
    result: DrawResult,
    *,
    now: datetime,
    on_winners: Callable[[Connection, Sequence[WinnerNotice]], None] | None = None,
) -> bool:
    """Store the draw's one result and move it to completed, with its audit row, its ``draw.completed``
    event and (``notify``) the winners' notices handed to ``on_winners`` in the same transaction.

    False when another job completed the draw first, or moved it to another block: nothing is written.
    """
    check_transition(draw.status, DrawStatus.COMPLETED)
    # The row lock this UPDATE takes serialises completers: a second one finds the draw completed (or
    # moved to another block) and changes nothing. The result's primary key is the backstop.
    moved = conn.execute(
        update(draws)
        .where(draws.c.id == draw.id, draws.c.status == draw.status, _same_block(result.block_hash))
        .values(
            status=DrawStatus.COMPLETED,
            status_reason=f"winners drawn with block {result.block_hash}",
            block_hash=result.block_hash,
            block_confirmations=result.confirmations,
            checked_at=now,
            completed_at=now,
        )
    )
    if not moved.rowcount:
        return False
    stored = conn.execute(
        pg_insert(draw_results)
        .values(
            draw_id=draw.id,
            block_hash=result.block_hash,
            confirmations=result.confirmations,
            winners=result.winners,
            proof_gz=result.proof_gz,
        )
        .on_conflict_do_nothing(index_elements=[draw_results.c.draw_id])
        .returning(draw_results.c.draw_id)
    ).first()
    if stored is None:  # a result without a completed draw must not exist: roll the move back
        raise RuntimeError(f"draw {draw.id} had a result before it was completed")
    reason = f"{len(result.winners)} winners drawn"
    _audit(conn, draw.id, draw.status, DrawStatus.COMPLETED, reason, result.block_hash, result.confirmations)
    data = {
        "draw_id": str(draw.id),
        "raffle_id": draw.raffle_id,
        "status": str(DrawStatus.COMPLETED),
        "commitment": draw.commitment,
        "beacon": {
            "type": "bitcoin_block",
            "network": draw.network,
            "height": draw.beacon_height,
            "block_hash": result.block_hash,
        },
        "winners": result.winners,
        "public_path": public_path(draw.public_token),
    }
    conn.execute(
        insert(app_events).values(
            app_id=draw.app_id, type=EVENT_FOR_STATUS[DrawStatus.COMPLETED], subject_id=draw.id, data=data
        )
    )
    if draw.notify and on_winners is not None:
        on_winners(conn, winner_notices(conn, draw, result.winners))
    return True


def winner_notices(conn: Connection, draw: DrawRecord, winners: Sequence[dict[str, Any]]) -> list[WinnerNotice]:
    """The winners that came with an email, in draw order."""
    packed = conn.execute(select(draw_entries.c.emails).where(draw_entries.c.draw_id == draw.id)).scalar()
    emails: dict[str, str] = json.loads(zlib.decompress(bytes(packed))) if packed is not None else {}
    return [
        WinnerNotice(
            draw_id=draw.id,
            app_id=draw.app_id,
            raffle_id=draw.raffle_id,
            rank=rank,
            entry_id=winner["id"],
            ticket=winner["ticket"],
            email=emails[winner["id"]],
            public_token=draw.public_token,
            metadata=draw.metadata,
        )
        for rank, winner in enumerate(winners, start=1)
        if winner["id"] in emails
    ]


def _same_block(block_hash: str | None) -> Any:
    return draws.c.block_hash.is_(None) if block_hash is None else draws.c.block_hash == block_hash


def _audit(
    conn: Connection,
    draw_id: uuid.UUID,
    from_status: DrawStatus,
    to_status: DrawStatus,
    reason: str,
    block_hash: str | None,
    confirmations: int | None,
) -> None:
    conn.execute(
        insert(draw_audit).values(
            draw_id=draw_id,
            from_status=from_status,
            to_status=to_status,
            block_hash=block_hash,
            confirmations=confirmations,
            reason=reason,
        )
    )
