"""Statements and guarded state moves for payment requests.

A check locks the request row (``SELECT … FOR UPDATE``), merges what the node said with the stored
receipts, evaluates, and writes the new state, its audit row and its app event in one transaction,
so two checks at once serialise and a repeated check is a no-op.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from satworks.db.schema import (
    app_events,
    chain_cursors,
    payment_audit,
    payment_requests,
    payment_txs,
    webhook_receipts,
)
from satworks.payments.evaluate import Policy, Receipt, Verdict, evaluate
from satworks.payments.status import (
    CLOSED,
    EVENT_FOR_STATUS,
    PAID_LATE_EVENT,
    ExceptionStatus,
    PaymentStatus,
    TxState,
    check_transition,
)

DOCUMENT_COLUMNS = [
    c for c in payment_requests.c if c.name not in ("app_id", "request_hash", "checked_at", "checks", "seq")
]
SWEEP_LOCK = 0x5A7_0001  # pg advisory lock id: one sweep at a time
COUNTED = (TxState.MEMPOOL, TxState.CONFIRMED)  # receipts listed in a request's txids


# --- intake (async engine) ----------------------------------------------------------------------------


def insert_request() -> Any:
    return (
        pg_insert(payment_requests)
        .on_conflict_do_nothing(index_elements=[payment_requests.c.app_id, payment_requests.c.idempotency_key])
        .returning(*DOCUMENT_COLUMNS)
    )


def by_idempotency_key(app_id: uuid.UUID, key: str) -> Select[Any]:
    return select(*DOCUMENT_COLUMNS, payment_requests.c.request_hash).where(
        payment_requests.c.app_id == app_id, payment_requests.c.idempotency_key == key
    )


def delete_unstarted(payment_id: uuid.UUID) -> Any:
    """Undo a request whose first message never reached the broker (nothing was checked yet)."""
    return payment_requests.delete().where(
        payment_requests.c.id == payment_id,
        payment_requests.c.checks == 0,
        payment_requests.c.checked_at.is_(None),
    )


def stranded_creating(older_than: datetime, limit: int) -> Select[Any]:
    """Requests still waiting for an address long after creation (their first message was lost)."""
    return (
        select(payment_requests.c.id)
        .where(payment_requests.c.status == PaymentStatus.CREATING, payment_requests.c.created_at < older_than)
        .limit(limit)
    )


def get(app_id: uuid.UUID, payment_id: uuid.UUID) -> Select[Any]:
    return select(*DOCUMENT_COLUMNS).where(payment_requests.c.id == payment_id, payment_requests.c.app_id == app_id)


def txids_of(payment_ids: Sequence[uuid.UUID]) -> Select[Any]:
    return (
        select(payment_txs.c.payment_id, payment_txs.c.txid)
        .where(payment_txs.c.payment_id.in_(payment_ids), payment_txs.c.state.in_(COUNTED))
        .order_by(payment_txs.c.received_at)
    )


def listing(app_id: uuid.UUID, *, status: str | None, before_seq: int | None, limit: int) -> Select[Any]:
    query = select(*DOCUMENT_COLUMNS, payment_requests.c.seq).where(payment_requests.c.app_id == app_id)
    if status is not None:
        query = query.where(payment_requests.c.status == status)
    if before_seq is not None:
        query = query.where(payment_requests.c.seq < before_seq)
    return query.order_by(payment_requests.c.seq.desc()).limit(limit)


def counts_by_status() -> Select[Any]:
    return select(payment_requests.c.status, func.count()).group_by(payment_requests.c.status)


def exists(payment_id: uuid.UUID) -> Select[Any]:
    return select(payment_requests.c.id).where(payment_requests.c.id == payment_id)


def record_webhook(source: str, event_id: str) -> Any:
    """Insert a receipt; no row returned means the event id was seen before (a replay)."""
    return (
        pg_insert(webhook_receipts)
        .values(source=source, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(webhook_receipts.c.event_id)
    )


def forget_webhook(source: str, event_id: str) -> Any:
    return webhook_receipts.delete().where(webhook_receipts.c.source == source, webhook_receipts.c.event_id == event_id)


# --- workers (sync engine) ----------------------------------------------------------------------------


def set_address(conn: Connection, payment_id: uuid.UUID, address: str) -> bool:
    """``creating`` → ``new`` with its address, once. False when another run got there first."""
    done = conn.execute(
        update(payment_requests)
        .where(payment_requests.c.id == payment_id, payment_requests.c.status == PaymentStatus.CREATING)
        .values(status=PaymentStatus.NEW, address=address)
    )
    if done.rowcount:
        _audit(conn, payment_id, PaymentStatus.CREATING, PaymentStatus.NEW, None, 0, "address assigned")
    return bool(done.rowcount)


def mark_unwatchable(conn: Connection, payment_id: uuid.UUID) -> None:
    """A supplied address the node's wallet does not watch: no payment to it could ever be seen."""
    row = conn.execute(
        update(payment_requests)
        .where(payment_requests.c.id == payment_id, payment_requests.c.status == PaymentStatus.NEW)
        .values(status=PaymentStatus.INVALID, status_reason="address not watched by the node's wallet")
        .returning(payment_requests)
    ).first()
    if row is not None:
        _audit(conn, payment_id, PaymentStatus.NEW, PaymentStatus.INVALID, None, 0, row.status_reason)
        _events(conn, row, PaymentStatus.NEW, None, Verdict(PaymentStatus.INVALID, None, 0, 0, row.status_reason))


def claim_check(conn: Connection, payment_id: uuid.UUID, seq: int) -> bool:
    """Advance the scheduled-check counter from ``seq``; only the winner schedules the next check."""
    done = conn.execute(
        update(payment_requests)
        .where(payment_requests.c.id == payment_id, payment_requests.c.checks == seq)
        .values(checks=seq + 1)
    )
    return bool(done.rowcount)


def load(conn: Connection, payment_id: uuid.UUID) -> Any:
    return conn.execute(select(payment_requests).where(payment_requests.c.id == payment_id)).first()


def monitored(conn: Connection, now: datetime) -> list[Any]:
    """Requests a sweep must look at: open ones, and closed ones inside their monitoring window."""
    window_end = payment_requests.c.expires_at + func.make_interval(0, 0, 0, 0, 0, 0, payment_requests.c.monitoring_s)
    return list(
        conn.execute(
            select(payment_requests.c.id, payment_requests.c.address).where(
                payment_requests.c.address.is_not(None),
                (payment_requests.c.status.in_((PaymentStatus.NEW, PaymentStatus.PROCESSING))) | (window_end >= now),
            )
        )
    )


def sweep_candidates(conn: Connection, now: datetime) -> set[uuid.UUID]:
    """Requests whose status can change without new node data: confirmations growing, expiry due,
    unconfirmed money that may vanish, the monitoring window ending."""
    has_open_tx = (
        select(payment_txs.c.payment_id)
        .where(payment_txs.c.payment_id == payment_requests.c.id, payment_txs.c.state != TxState.CONFIRMED)
        .exists()
    )
    due = payment_requests.c.expires_at <= now - timedelta(seconds=1)
    rows = conn.execute(
        select(payment_requests.c.id).where(
            (payment_requests.c.status == PaymentStatus.PROCESSING)
            | ((payment_requests.c.status == PaymentStatus.NEW) & (due | has_open_tx))
            | (payment_requests.c.status.in_(CLOSED) & has_open_tx)
        )
    )
    return {row.id for row in rows}


def by_addresses(conn: Connection, addresses: Iterable[str]) -> dict[str, uuid.UUID]:
    rows = conn.execute(
        select(payment_requests.c.address, payment_requests.c.id).where(payment_requests.c.address.in_(list(addresses)))
    )
    return {row.address: row.id for row in rows}


def paid_by(conn: Connection, txid: str) -> dict[str, uuid.UUID]:
    """Address → request of every request holding a receipt of ``txid``, whatever its state now."""
    rows = conn.execute(
        select(payment_requests.c.address, payment_requests.c.id)
        .join(payment_txs, payment_txs.c.payment_id == payment_requests.c.id)
        .where(payment_txs.c.txid == txid)
        .distinct()
    )
    return {row.address: row.id for row in rows}


def stored_txs(conn: Connection, payment_ids: Sequence[uuid.UUID]) -> list[Any]:
    return list(conn.execute(select(payment_txs).where(payment_txs.c.payment_id.in_(payment_ids))))


def cursor(conn: Connection, node: str) -> str | None:
    value = conn.execute(select(chain_cursors.c.block_hash).where(chain_cursors.c.node == node)).scalar()
    return str(value) if value is not None else None


def save_cursor(conn: Connection, node: str, block_hash: str) -> None:
    stmt = pg_insert(chain_cursors).values(node=node, block_hash=block_hash)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[chain_cursors.c.node], set_={"block_hash": block_hash, "updated_at": func.now()}
        )
    )


def try_sweep_lock(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK}).scalar())


def apply_receipts(
    conn: Connection,
    payment_id: uuid.UUID,
    fresh: Sequence[Receipt],
    read_at: datetime,
    *,
    tip_height: int | None = None,
) -> Verdict | None:
    """Merge ``fresh`` receipts (just read from the node) with the stored ones, evaluate and persist.

    Stored receipts not re-read keep their state; confirmed ones get their confirmations from
    ``tip_height`` when given. A read that began before the last one applied (``checked_at``) is
    stale: it is not applied, so an older answer never overwrites a newer one whatever order the
    jobs finish in. Returns the verdict, or None for a request still being created.
    """
    row = conn.execute(select(payment_requests).where(payment_requests.c.id == payment_id).with_for_update()).first()
    if row is None or row.status == PaymentStatus.CREATING:
        return None
    if row.checked_at is not None and read_at < row.checked_at:
        exception_now = ExceptionStatus(row.exception_status) if row.exception_status else None
        return Verdict(PaymentStatus(row.status), exception_now, row.received_sat, row.confirmations)
    fresh_keys = {(r.txid, r.vout) for r in fresh}
    receipts = list(fresh)
    for stored in conn.execute(select(payment_txs).where(payment_txs.c.payment_id == payment_id)):
        if (stored.txid, stored.vout) in fresh_keys:
            continue
        confirmations = stored.confirmations
        if tip_height is not None and stored.state == TxState.CONFIRMED and stored.block_height is not None:
            confirmations = tip_height - stored.block_height + 1
        receipts.append(
            Receipt(
                stored.txid,
                stored.vout,
                stored.amount_sat,
                confirmations,
                stored.state == TxState.MEMPOOL,
                stored.replaceable,
                stored.received_at,
            )
        )
    if fresh:
        _upsert_txs(conn, payment_id, fresh, read_at)
    policy = Policy(row.amount_sat, row.required_confirmations, row.tolerance_pct, row.expires_at, row.monitoring_s)
    current = PaymentStatus(row.status)
    exception = ExceptionStatus(row.exception_status) if row.exception_status else None
    verdict = evaluate(current, exception, policy, receipts, read_at)
    check_transition(current, verdict.status)
    changes: dict[str, Any] = {"checked_at": read_at}
    if (verdict.status, verdict.exception_status, verdict.received_sat, verdict.confirmations) != (
        current,
        exception,
        row.received_sat,
        row.confirmations,
    ):
        changes.update(
            status=verdict.status,
            exception_status=verdict.exception_status,
            received_sat=verdict.received_sat,
            confirmations=max(0, verdict.confirmations),
        )
        if verdict.status == PaymentStatus.SETTLED and current != PaymentStatus.SETTLED:
            changes["settled_at"] = read_at
        if verdict.reason is not None:
            changes["status_reason"] = verdict.reason
    conn.execute(update(payment_requests).where(payment_requests.c.id == payment_id).values(**changes))
    if verdict.status != current or verdict.exception_status != exception:
        _audit(
            conn,
            payment_id,
            current,
            verdict.status,
            verdict.exception_status,
            verdict.received_sat,
            verdict.reason,
        )
        _events(conn, row, current, exception, verdict)
    return verdict


def _upsert_txs(conn: Connection, payment_id: uuid.UUID, receipts: Sequence[Receipt], now: datetime) -> None:
    stmt = pg_insert(payment_txs)
    values = [
        {
            "txid": r.txid,
            "vout": r.vout,
            "payment_id": payment_id,
            "amount_sat": r.amount_sat,
            "state": r.state,
            "confirmations": r.confirmations,
            "block_hash": r.block_hash,
            "block_height": r.block_height,
            "replaceable": r.replaceable,
            "received_at": r.received_at,
            "updated_at": now,
        }
        for r in receipts
    ]
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[payment_txs.c.txid, payment_txs.c.vout],
            set_={
                c: stmt.excluded[c]
                for c in ("state", "confirmations", "block_hash", "block_height", "replaceable", "updated_at")
            },
            where=payment_txs.c.payment_id == stmt.excluded.payment_id,
        ),
        values,
    )


def _audit(
    conn: Connection,
    payment_id: uuid.UUID,
    from_status: PaymentStatus,
    to_status: PaymentStatus,
    exception: ExceptionStatus | None,
    received_sat: int,
    reason: str | None,
) -> None:
    conn.execute(
        insert(payment_audit).values(
            payment_id=payment_id,
            from_status=from_status,
            to_status=to_status,
            exception_status=exception,
            received_sat=received_sat,
            reason=reason,
        )
    )


def _events(conn: Connection, row: Any, current: PaymentStatus, exception: ExceptionStatus | None, v: Verdict) -> None:
    names = []
    if v.status != current and v.status in EVENT_FOR_STATUS:
        names.append(EVENT_FOR_STATUS[v.status])
    if v.exception_status == ExceptionStatus.PAID_LATE and exception != ExceptionStatus.PAID_LATE:
        names.append(PAID_LATE_EVENT)
    data = {
        "payment_id": str(row.id),
        "status": str(v.status),
        "exception_status": v.exception_status,
        "amount_sat": row.amount_sat,
        "received_sat": v.received_sat,
    }
    for name in names:
        conn.execute(insert(app_events).values(app_id=row.app_id, type=name, subject_id=row.id, data=data))
