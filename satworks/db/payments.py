"""Payment records, and the guarded state moves the payment jobs make (sync engine).

The intake's side (creating and reading requests) is ``db.payment_requests``. A check locks the
request row (``SELECT … FOR UPDATE``), merges what the node said with the stored
receipts, evaluates, and writes the new state, its audit row and its app event in one transaction,
so two checks at once serialise and a repeated check is a no-op.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, any_, bindparam, func, insert, select, text, union, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from satworks.audit import AuditKind
from satworks.db import audit
from satworks.db.locks import AdvisoryLock
from satworks.db.schema import app_events, chain_cursors, payment_audit, payment_requests, payment_txs
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

SWEEP_LOCK = AdvisoryLock.PAYMENTS_SWEEP
COUNTED = (TxState.MEMPOOL, TxState.CONFIRMED)  # receipts listed in a request's txids


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A stored payment request (every column of ``payment_requests``)."""

    id: uuid.UUID
    app_id: uuid.UUID
    method: str
    status: PaymentStatus
    exception_status: ExceptionStatus | None
    status_reason: str | None
    amount_sat: int
    received_sat: int
    required_confirmations: int
    confirmations: int
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
    settled_at: datetime | None
    checked_at: datetime | None
    checks: int
    seq: int
    receipt_email: str | None
    payment_request: str | None  # lightning: the BOLT11 invoice, once lnd made it
    payment_hash: str | None  # lightning: hex
    received_msat: int | None  # lightning: exactly what arrived; received_sat is its whole satoshis


@dataclass(frozen=True, slots=True)
class StoredTx:
    """One output paying a request, as last read from the node (a row of ``payment_txs``)."""

    txid: str
    vout: int
    payment_id: uuid.UUID
    amount_sat: int
    state: TxState
    confirmations: int
    block_hash: str | None
    block_height: int | None
    replaceable: bool
    received_at: datetime
    updated_at: datetime


RECORD_COLUMNS = [payment_requests.c[f.name] for f in dataclasses.fields(PaymentRecord)]
_TX_COLUMNS = [payment_txs.c[f.name] for f in dataclasses.fields(StoredTx)]


def payment_record(row: Any) -> PaymentRecord:
    """A record from a row of ``RECORD_COLUMNS``."""
    values = row._asdict()
    values["status"] = PaymentStatus(values["status"])
    if values["exception_status"] is not None:
        values["exception_status"] = ExceptionStatus(values["exception_status"])
    return PaymentRecord(**values)


def _stored_tx(row: Any) -> StoredTx:
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(StoredTx)}
    values["state"] = TxState(values["state"])
    return StoredTx(**values)


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


def load(conn: Connection, payment_id: uuid.UUID) -> PaymentRecord | None:
    row = conn.execute(select(*RECORD_COLUMNS).where(payment_requests.c.id == payment_id)).first()
    return payment_record(row) if row is not None else None


def _watched(now: datetime) -> ColumnElement[bool]:
    """Requests a sweep looks at: open ones, and closed ones inside their monitoring window."""
    window_end = payment_requests.c.expires_at + func.make_interval(0, 0, 0, 0, 0, 0, payment_requests.c.monitoring_s)
    return payment_requests.c.address.is_not(None) & (
        payment_requests.c.status.in_((PaymentStatus.NEW, PaymentStatus.PROCESSING)) | (window_end >= now)
    )


def _any(name: str, values: Collection[Any], item: Any) -> Any:
    """``= ANY(:name)`` with one array parameter: no limit on how many values (an IN list binds one each)."""
    return any_(bindparam(name, list(values), type_=ARRAY(item)))


def watched_by_address(conn: Connection, now: datetime, addresses: Collection[str]) -> dict[str, uuid.UUID]:
    """Address → request for those of ``addresses`` whose request a sweep looks at (``_watched``)."""
    if not addresses:
        return {}
    rows = conn.execute(
        select(payment_requests.c.address, payment_requests.c.id).where(
            payment_requests.c.address == _any("addresses", addresses, String), _watched(now)
        )
    )
    return {row.address: row.id for row in rows}


def watched_receipts(
    conn: Connection, now: datetime, *, txids: Collection[str] | None = None, above_height: int | None = None
) -> list[tuple[StoredTx, str]]:
    """Stored receipts of watched requests, each with its request's address: those of ``txids``; or,
    without ``txids``, those in doubt (not confirmed, or confirmed above ``above_height``; every one when
    ``above_height`` is None). Read through indexes on the receipts, not over every watched request."""
    query = select(*_TX_COLUMNS, payment_requests.c.address).join(
        payment_requests, payment_requests.c.id == payment_txs.c.payment_id
    )
    if txids is not None:
        if not txids:
            return []
        query = query.where(payment_txs.c.txid == _any("txids", txids, String))
    elif above_height is not None:
        query = query.where(
            (payment_txs.c.state != TxState.CONFIRMED)
            | payment_txs.c.block_height.is_(None)
            | (payment_txs.c.block_height > above_height)
        )
    rows = conn.execute(query.where(_watched(now)))
    return [(_stored_tx(row), row.address) for row in rows]


def sweep_candidates(conn: Connection, now: datetime) -> set[uuid.UUID]:
    """Watched requests whose status can change without new node data: confirmations growing, expiry
    due, unconfirmed money that may vanish, the monitoring window ending. Three indexed reads (the
    ``payment_requests_sweep`` and ``payment_txs_open`` indexes), none over every open request."""
    unconfirmed = select(payment_txs.c.payment_id).where(payment_txs.c.state != TxState.CONFIRMED)
    due = payment_requests.c.expires_at <= now - timedelta(seconds=1)
    ours = (payment_requests.c.method == "onchain") & _watched(now)  # lightning: jobs/lightning.py
    rows = conn.execute(
        union(
            select(payment_requests.c.id).where(ours, payment_requests.c.status == PaymentStatus.PROCESSING),
            select(payment_requests.c.id).where(ours, payment_requests.c.status == PaymentStatus.NEW, due),
            select(payment_requests.c.id).where(
                ours,
                payment_requests.c.status.in_((PaymentStatus.NEW, *CLOSED)),
                payment_requests.c.id.in_(unconfirmed),
            ),
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


def stored_txs(conn: Connection, payment_ids: Sequence[uuid.UUID]) -> list[StoredTx]:
    rows = conn.execute(select(*_TX_COLUMNS).where(payment_txs.c.payment_id.in_(payment_ids)))
    return [_stored_tx(row) for row in rows]


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
    jobs finish in. Returns the verdict, or None for a request still being created (or not on-chain:
    a lightning request's status comes from its invoice, ``db.lightning.apply_invoice``).
    """
    row = conn.execute(select(payment_requests).where(payment_requests.c.id == payment_id).with_for_update()).first()
    if row is None or row.status == PaymentStatus.CREATING or row.method != "onchain":
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
    owner = select(payment_requests.c.app_id).where(payment_requests.c.id == payment_id).scalar_subquery()
    change = {
        "from": str(from_status),
        "to": str(to_status),
        "exception_status": str(exception) if exception else None,
        "received_sat": received_sat,
        "reason": reason,
    }
    audit.record(
        conn, AuditKind.PAYMENT_STATUS_CHANGED, actor=audit.SYSTEM, app_id=owner, subject_id=payment_id, data=change
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
