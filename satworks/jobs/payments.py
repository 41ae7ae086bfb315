"""Payment jobs: hand out an address, check one request, check one transaction, sweep them all.

Every job re-reads the truth from the node and is safe to run twice or at once: state moves happen
under a row lock in ``db.payments.apply_receipts``. A node that cannot be asked raises
``NodeUnavailable``, which Dramatiq retries with backoff; nothing is expired or invalidated
without a successful read.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from satworks import clock
from satworks.db import payments as store
from satworks.integrations.bitcoin.records import WalletTx
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.payments.evaluate import Receipt
from satworks.payments.status import PaymentStatus, TxState
from satworks.settings import Settings

log = logging.getLogger(__name__)
NODE = "bitcoind"
CREATE_ADDRESS, CHECK, CHECK_TX, SWEEP = (
    "payments.create_address",
    "payments.check",
    "payments.check_tx",
    "payments.sweep",
)


@dataclass(frozen=True)
class PaymentResources:
    settings: Settings
    engine: Engine
    rpc: BitcoinRpc
    enqueue: Callable[[str, tuple[Any, ...], int | None], None]


def next_check_delay_ms(settings: Settings, checks: int, expires_at: datetime, now: datetime) -> int:
    """Exponential from ``payment_check_min_ms`` to ``payment_check_max_ms``, but never past expiry."""
    delay = min(settings.payment_check_max_ms, settings.payment_check_min_ms * 2 ** min(checks, 20))
    delay = int(delay)
    until_expiry = int((expires_at - now).total_seconds() * 1000) + 1_250  # expiry is decided a second after
    return max(10, min(delay, until_expiry)) if until_expiry > 0 else delay


def create_address(res: PaymentResources, payment_id: str) -> None:
    pid = uuid.UUID(payment_id)
    with res.engine.connect() as conn:
        row = store.load(conn, pid)
    if row is None or row.status != PaymentStatus.CREATING:
        return  # already done by an earlier run
    address = res.rpc.new_address(payment_id)
    with res.engine.begin() as conn:
        if store.set_address(conn, pid, address):
            log.info("payment address assigned", extra={"action": "payment_address", "payment_id": payment_id})
    res.enqueue(CHECK, (payment_id, 0), None)


def check(res: PaymentResources, payment_id: str, seq: int | None = None) -> None:
    """Re-read one request's payments. A scheduled check (``seq`` given) schedules the next one."""
    pid = uuid.UUID(payment_id)
    with res.engine.connect() as conn:
        row = store.load(conn, pid)
        if row is None or row.address is None:
            return
        known = {r.txid for r in store.stored_txs(conn, [pid])}
    if row.address_supplied and row.status == PaymentStatus.NEW and not res.rpc.is_watched(row.address):
        with res.engine.begin() as conn:
            store.mark_unwatchable(conn, pid)
        log.warning(
            "supplied address not watched by the node",
            extra={"action": "payment_unwatchable", "payment_id": payment_id},
        )
        return
    read_at = clock.utcnow()
    txids = known | set(res.rpc.received_by_address(row.address))
    receipts = [r for txid in sorted(txids) for r in _read_tx(res.rpc, txid, {row.address})]
    with res.engine.begin() as conn:
        verdict = store.apply_receipts(conn, pid, receipts, read_at)
        follow_up = seq is not None and store.claim_check(conn, pid, seq)
    if verdict is not None:
        log.info(
            "payment checked",
            extra={"action": "payment_checked", "payment_id": payment_id, "status": str(verdict.status)},
        )
    status = verdict.status if verdict is not None else PaymentStatus(row.status)
    if follow_up and seq is not None and status.is_open:
        now = clock.utcnow()
        delay_ms = next_check_delay_ms(res.settings, seq + 1, row.expires_at, now)
        res.enqueue(CHECK, (payment_id, seq + 1), delay_ms)


def check_tx(res: PaymentResources, txid: str) -> None:
    """A node said ``txid`` changed: re-read it and re-evaluate the requests it pays."""
    read_at = clock.utcnow()
    tx = res.rpc.get_transaction(txid)
    if tx is None:
        return  # not a wallet transaction: nothing of ours
    with res.engine.begin() as conn:
        owners = store.by_addresses(conn, {r.address for r in tx.receives})
    receipts = _receipts(tx, set(owners))
    for address, pid in owners.items():
        with res.engine.begin() as conn:
            store.apply_receipts(conn, pid, [r for r in receipts if r.address == address], read_at)


def sweep(res: PaymentResources) -> dict[str, int]:
    """Check every monitored request with a bounded number of RPC calls.

    The wallet's transactions since the stored cursor (from the fork point after a reorg; ``removed``
    lists what the reorg undid), the tip height, then one transaction read per txid that touches our
    addresses or was unconfirmed. Confirmations of everything else follow from the stored block
    heights.
    """
    calls_before = res.rpc.calls
    read_at = clock.utcnow()
    with res.engine.begin() as conn:
        if not store.try_sweep_lock(conn):
            return {"skipped": 1}
        last = store.cursor(conn, NODE)
        monitored = {row.address: row.id for row in store.monitored(conn, read_at)}
        unconfirmed = {r.txid for r in store.stored_txs(conn, list(monitored.values())) if r.state != TxState.CONFIRMED}
        since = res.rpc.list_since_block(last)
        tip = res.rpc.block_count()
        affected = {e.txid for e in (*since.transactions, *since.removed) if e.address in monitored} | unconfirmed
        receipts = [r for txid in sorted(affected) for r in _read_tx(res.rpc, txid, set(monitored))]
        by_payment: dict[uuid.UUID, list[Receipt]] = {pid: [] for pid in store.sweep_candidates(conn, read_at)}
        for receipt in receipts:
            by_payment.setdefault(monitored[receipt.address], []).append(receipt)
        for pid, fresh in by_payment.items():
            store.apply_receipts(conn, pid, fresh, read_at, tip_height=tip)
        store.save_cursor(conn, NODE, since.last_block)
    return {
        "monitored": len(monitored),
        "evaluated": len(by_payment),
        "txs": len(affected),
        "rpc_calls": res.rpc.calls - calls_before,
    }


@dataclass(frozen=True)
class _AddressedReceipt(Receipt):
    address: str = ""


def _read_tx(rpc: BitcoinRpc, txid: str, addresses: set[str]) -> list[_AddressedReceipt]:
    tx = rpc.get_transaction(txid)
    return [] if tx is None else _receipts(tx, addresses)


def _receipts(tx: WalletTx, addresses: Iterable[str]) -> list[_AddressedReceipt]:
    """Outputs of ``tx`` paying one of ``addresses``, with its liveness as the node reports it."""
    wanted = set(addresses)
    return [
        _AddressedReceipt(
            txid=tx.txid,
            vout=r.vout,
            amount_sat=r.amount_sat,
            confirmations=tx.confirmations,
            in_mempool=tx.in_mempool,
            replaceable=tx.replaceable,
            received_at=tx.received_at,
            block_hash=tx.block_hash,
            block_height=tx.block_height,
            address=r.address,
        )
        for r in tx.receives
        if r.address in wanted
    ]


@dataclass(frozen=True)
class InternalActor:
    """A platform actor that is not an app job: no job row, its own record is the payment request."""

    name: str
    run: Callable[..., Any]
    max_retries: int = 30
    min_backoff_ms: int = 500
    max_backoff_ms: int = 5 * 60_000
    time_limit_ms: int = 120_000


PAYMENT_ACTORS = (
    InternalActor(CREATE_ADDRESS, create_address),
    InternalActor(CHECK, check),
    InternalActor(CHECK_TX, check_tx),
    InternalActor(SWEEP, sweep, max_retries=5, time_limit_ms=600_000),
)
