"""Lightning requests' invoices and their guarded state moves (sync engine), and the listener's cursor.

``lightning_invoices`` holds lnd's side of a request: the payment hash (and, until lnd confirmed the
invoice, the preimage that makes AddInvoice idempotent), the add/settle indices and the state last
read. ``payment_requests`` holds what the app sees (``payment_request``, ``payment_hash``,
``received_msat``). A check locks the request row, decides (``payments.lightning.decide``) and
writes the status, its audit row and its app event in one transaction, as on-chain checks do
(``db.payments``); a repeated check changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    LargeBinary,
    String,
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, insert

from satworks.db.locks import AdvisoryLock
from satworks.db.payments import RECORD_COLUMNS, PaymentRecord, _audit, _events, payment_record
from satworks.db.schema import metadata, one_of, payment_requests
from satworks.integrations.lnd.records import InvoiceState, LndInvoice
from satworks.payments.evaluate import Verdict
from satworks.payments.lightning import InvoiceVerdict, decide
from satworks.payments.status import OPEN, ExceptionStatus, PaymentStatus, check_transition

METHOD = "lightning"
SWEEP_LOCK = AdvisoryLock.LIGHTNING_SWEEP

lightning_invoices = Table(
    "lightning_invoices",
    metadata,
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payment_requests.id"), primary_key=True),
    Column("payment_hash", String(64), nullable=False, unique=True),
    Column("preimage", LargeBinary),  # only until lnd confirmed the invoice
    Column("value_msat", BigInteger, nullable=False),
    Column("add_index", BigInteger),
    Column("settle_index", BigInteger),
    Column("state", String(16)),
    Column("amt_paid_msat", BigInteger, nullable=False, server_default=text("0")),
    Column("node_expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(f"state IS NULL OR {one_of('state', InvoiceState)}", name="lightning_invoices_state"),
)

lightning_cursors = Table(
    "lightning_cursors",
    metadata,
    Column("node", String(66), primary_key=True),  # the node's identity pubkey: indices belong to one node
    Column("add_index", BigInteger, nullable=False),
    Column("settle_index", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    payment_id: uuid.UUID
    payment_hash: str
    preimage: bytes | None
    value_msat: int
    add_index: int | None
    settle_index: int | None
    state: InvoiceState | None
    amt_paid_msat: int


@dataclass(frozen=True, slots=True)
class Watched:
    """An open lightning request, as the listener and the sweep see it."""

    payment_id: uuid.UUID
    payment_hash: str
    status: PaymentStatus
    add_index: int
    state: InvoiceState | None
    amt_paid_msat: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Cursor:
    add_index: int
    settle_index: int


def _stored(row: Any) -> StoredInvoice:
    values = row._asdict()
    values["state"] = InvoiceState(values["state"]) if values["state"] else None
    return StoredInvoice(**values)


_INVOICE_COLUMNS = [
    lightning_invoices.c[name]
    for name in (
        "payment_id",
        "payment_hash",
        "preimage",
        "value_msat",
        "add_index",
        "settle_index",
        "state",
        "amt_paid_msat",
    )
]


def load(conn: Connection, payment_id: uuid.UUID) -> tuple[PaymentRecord, StoredInvoice | None] | None:
    """The request and its invoice row (None before the first creation attempt)."""
    row = conn.execute(select(*RECORD_COLUMNS).where(payment_requests.c.id == payment_id)).first()
    if row is None:
        return None
    invoice = conn.execute(select(*_INVOICE_COLUMNS).where(lightning_invoices.c.payment_id == payment_id)).first()
    return payment_record(row), (_stored(invoice) if invoice is not None else None)


def reserve(
    conn: Connection, payment_id: uuid.UUID, payment_hash: str, preimage: bytes, value_msat: int
) -> StoredInvoice:
    """The invoice row of a request being created: written with this preimage the first time, else the
    stored one, so that every attempt asks lnd for the very same invoice."""
    conn.execute(
        insert(lightning_invoices)
        .values(payment_id=payment_id, payment_hash=payment_hash, preimage=preimage, value_msat=value_msat)
        .on_conflict_do_nothing(index_elements=[lightning_invoices.c.payment_id])
    )
    row = conn.execute(select(*_INVOICE_COLUMNS).where(lightning_invoices.c.payment_id == payment_id)).one()
    return _stored(row)


def record_created(
    conn: Connection,
    payment_id: uuid.UUID,
    *,
    payment_hash: str,
    payment_request: str,
    add_index: int,
    node_expires_at: datetime,
) -> bool:
    """``creating`` → ``new`` with lnd's invoice, once; the preimage is forgotten. False when another
    run got there first."""
    done = conn.execute(
        update(payment_requests)
        .where(
            payment_requests.c.id == payment_id,
            payment_requests.c.status == PaymentStatus.CREATING,
            payment_requests.c.method == METHOD,
        )
        .values(status=PaymentStatus.NEW, payment_request=payment_request, payment_hash=payment_hash, received_msat=0)
    )
    if not done.rowcount:
        return False
    conn.execute(
        update(lightning_invoices)
        .where(lightning_invoices.c.payment_id == payment_id)
        .values(
            preimage=None,
            add_index=add_index,
            node_expires_at=node_expires_at,
            state=InvoiceState.OPEN,
            updated_at=func.now(),
        )
    )
    _audit(conn, payment_id, PaymentStatus.CREATING, PaymentStatus.NEW, None, 0, "invoice created")
    return True


def apply_invoice(
    conn: Connection, payment_id: uuid.UUID, invoice: LndInvoice, read_at: datetime, answered_at: datetime
) -> InvoiceVerdict | None:
    """Decide from ``invoice`` (read from lnd: asked at ``read_at``, answered by ``answered_at``) and
    persist, under the request's row lock: status, amounts, audit row and app events together. None for
    a request without an invoice yet, or another one's invoice (refused: a check must read its own)."""
    row = conn.execute(select(payment_requests).where(payment_requests.c.id == payment_id).with_for_update()).first()
    if row is None or row.method != METHOD or row.payment_hash is None:
        return None
    if invoice.payment_hash != row.payment_hash:
        raise ValueError(f"invoice {invoice.payment_hash} is not payment {payment_id}'s")
    current = PaymentStatus(row.status)
    exception = ExceptionStatus(row.exception_status) if row.exception_status else None
    verdict = decide(
        current,
        exception,
        amount_sat=row.amount_sat,
        expires_at=row.expires_at,
        state=invoice.state,
        amt_paid_msat=invoice.amt_paid_msat,
        received_msat=row.received_msat or 0,
        read_at=read_at,
        node_expires_at=invoice.expires_at,
        answered_at=answered_at,
    )
    check_transition(current, verdict.status)
    conn.execute(
        update(lightning_invoices)
        .where(
            lightning_invoices.c.payment_id == payment_id,
            (lightning_invoices.c.state.is_distinct_from(invoice.state))
            | (lightning_invoices.c.amt_paid_msat != invoice.amt_paid_msat)
            | (lightning_invoices.c.settle_index.is_distinct_from(invoice.settle_index or None)),
        )
        .values(
            state=invoice.state,
            amt_paid_msat=invoice.amt_paid_msat,
            settle_index=invoice.settle_index or None,
            updated_at=func.now(),
        )
    )
    changes: dict[str, Any] = {"checked_at": read_at}
    moved = verdict.status != current or verdict.exception_status != exception
    if moved or verdict.received_msat != row.received_msat:
        changes.update(
            status=verdict.status,
            exception_status=verdict.exception_status,
            received_sat=verdict.received_sat,
            received_msat=verdict.received_msat,
        )
        if verdict.status == PaymentStatus.SETTLED and current != PaymentStatus.SETTLED:
            changes["settled_at"] = read_at
        if verdict.reason is not None:
            changes["status_reason"] = verdict.reason
    conn.execute(update(payment_requests).where(payment_requests.c.id == payment_id).values(**changes))
    if moved:
        _audit(
            conn, payment_id, current, verdict.status, verdict.exception_status, verdict.received_sat, verdict.reason
        )
        as_verdict = Verdict(verdict.status, verdict.exception_status, verdict.received_sat, 0, verdict.reason)
        _events(conn, row, current, exception, as_verdict)
    return verdict


def _watched_query() -> Any:
    return select(
        payment_requests.c.id,
        payment_requests.c.payment_hash,
        payment_requests.c.status,
        lightning_invoices.c.add_index,
        lightning_invoices.c.state,
        lightning_invoices.c.amt_paid_msat,
        payment_requests.c.expires_at,
    ).join(lightning_invoices, lightning_invoices.c.payment_id == payment_requests.c.id)


def _watched(row: Any) -> Watched:
    return Watched(
        payment_id=row.id,
        payment_hash=row.payment_hash,
        status=PaymentStatus(row.status),
        add_index=row.add_index,
        state=InvoiceState(row.state) if row.state else None,
        amt_paid_msat=row.amt_paid_msat,
        expires_at=row.expires_at,
    )


def open_invoices(conn: Connection) -> list[Watched]:
    """Every lightning request whose invoice exists and whose status is still open, oldest invoice first."""
    rows = conn.execute(
        _watched_query()
        .where(
            payment_requests.c.method == METHOD,
            payment_requests.c.status.in_([s for s in OPEN if s != PaymentStatus.CREATING]),
            payment_requests.c.payment_hash.is_not(None),
        )
        .order_by(lightning_invoices.c.add_index)
    )
    return [_watched(row) for row in rows]


def by_hash(conn: Connection, payment_hash: str) -> Watched | None:
    """The request whose invoice has ``payment_hash`` (hex), whatever its status; None if not ours."""
    row = conn.execute(
        _watched_query().where(
            payment_requests.c.payment_hash == payment_hash, lightning_invoices.c.add_index.is_not(None)
        )
    ).first()
    return _watched(row) if row is not None else None


def cursor(conn: Connection, node: str) -> Cursor | None:
    row = conn.execute(
        select(lightning_cursors.c.add_index, lightning_cursors.c.settle_index).where(lightning_cursors.c.node == node)
    ).first()
    return Cursor(row.add_index, row.settle_index) if row is not None else None


def save_cursor(conn: Connection, node: str, position: Cursor) -> None:
    """Store the indices the listener has handed on; they never move back (two listeners may race)."""
    stmt = insert(lightning_cursors).values(node=node, add_index=position.add_index, settle_index=position.settle_index)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[lightning_cursors.c.node],
            set_={
                "add_index": func.greatest(lightning_cursors.c.add_index, stmt.excluded.add_index),
                "settle_index": func.greatest(lightning_cursors.c.settle_index, stmt.excluded.settle_index),
                "updated_at": func.now(),
            },
        )
    )


def try_sweep_lock(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK}).scalar())
