"""Payment jobs: hand out an address, check one request, check one transaction, sweep them all.

Every job re-reads the truth from the node and is safe to run twice or at once: state moves happen
under a row lock in ``db.payments.apply_receipts``. A node that cannot be asked raises
``NodeUnavailable``, which Dramatiq retries with backoff; nothing is expired or invalidated
without a successful read.

A request is evaluated only from a complete read of its address (``_read_closed``, ``_receipts``):
every wallet transaction paying it, every receipt already stored (refreshed even when the node no
longer lists it as a receive: conflicted, replaced, unknown), and every transaction conflicting with
one of those, so that a replacement is read together with what it replaced whatever order the
notifications come in. See docs/algorithms.md#replaced-and-conflicted-transactions.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from satworks import clock
from satworks.db import payments as store
from satworks.errors import NodeUnavailable
from satworks.integrations.bitcoin.records import ChainTip, WalletTx
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.payments.evaluate import Receipt
from satworks.payments.status import PaymentStatus, TxState
from satworks.settings import Settings

log = logging.getLogger(__name__)
NODE = "bitcoind"
CONSISTENT_READ_ATTEMPTS = 3
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
        stored = store.stored_txs(conn, [pid])
    if row.address_supplied and row.status == PaymentStatus.NEW and not res.rpc.is_watched(row.address):
        with res.engine.begin() as conn:
            store.mark_unwatchable(conn, pid)
        log.warning(
            "supplied address not watched by the node",
            extra={"action": "payment_unwatchable", "payment_id": payment_id},
        )
        return
    read_at = clock.utcnow()
    receipts = _read_request(res.rpc, pid, row.address, stored)
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
    """A node said ``txid`` changed: re-read every request it pays or paid, each one completely.

    Not only from ``txid``: a replaced transaction's notification may come before its replacement's,
    and evaluating the request from the one it names would see money vanish that is still there.
    """
    read_at = clock.utcnow()
    tx = res.rpc.get_transaction(txid)
    with res.engine.connect() as conn:
        owners = store.by_addresses(conn, {r.address for r in tx.receives} if tx is not None else ())
        owners |= store.paid_by(conn, txid)  # a conflicted or forgotten tx lists no receives any more
    for address, pid in sorted(owners.items()):
        with res.engine.connect() as conn:
            stored = store.stored_txs(conn, [pid])
        receipts = _read_request(res.rpc, pid, address, stored, known={txid: tx})
        with res.engine.begin() as conn:
            store.apply_receipts(conn, pid, receipts, read_at)


def sweep(res: PaymentResources) -> dict[str, int]:
    """Check every monitored request with a bounded number of RPC calls.

    The wallet's transactions since the stored cursor (from the fork point after a reorg; ``removed``
    lists what the reorg undid, but only for blocks between the cursor and the fork point), the tip
    height, the chain tips, then one transaction read per txid that touches our addresses, per stored
    receipt that is not confirmed, and per confirmed one whose block height lies on a branch off the
    active chain (so a block mined and reorganised away between two sweeps is not missed). The
    confirmations of every other confirmed receipt follow from its stored block height.
    """
    calls_before = res.rpc.calls
    read_at = clock.utcnow()
    with res.engine.begin() as conn:
        if not store.try_sweep_lock(conn):
            return {"skipped": 1}
        last = store.cursor(conn, NODE)
        since = res.rpc.list_since_block(last)
        tip = res.rpc.block_count()
        tips = res.rpc.chain_tips()
        # Only what this block range touched is read from the database: the watched addresses among
        # the wallet's new entries, and the stored receipts that may have changed (not every open request).
        floor = min([tip, *(t.height - t.branch_length for t in tips if t.status != "active")])
        in_doubt = store.watched_receipts(conn, read_at, above_height=None if since.from_start else floor)
        doubtful = {r.txid for r, _ in in_doubt if since.from_start or _in_doubt(r.state, r.block_height, tip, tips)}
        entries = (*since.transactions, *since.removed)
        listed_owners = store.watched_by_address(conn, read_at, {e.address for e in entries if e.address})
        listed = {e.txid for e in entries if e.address in listed_owners}
        txs = _read_closed(res.rpc, listed | doubtful)
        stored = store.watched_receipts(conn, read_at, txids=txs.keys())
        paid = {r.address for tx in txs.values() if tx is not None for r in tx.receives}
        owners = {**store.watched_by_address(conn, read_at, paid), **{a: r.payment_id for r, a in stored}}
        by_payment: dict[uuid.UUID, list[Receipt]] = {pid: [] for pid in store.sweep_candidates(conn, read_at)}
        for pid, fresh in _receipts(txs, owners, [r for r, _ in stored]).items():
            by_payment[pid] = fresh
        for pid, fresh in by_payment.items():
            store.apply_receipts(conn, pid, fresh, read_at, tip_height=tip)
        store.save_cursor(conn, NODE, since.last_block)
    return {
        "owners": len(owners),
        "evaluated": len(by_payment),
        "txs": len(txs),
        "rpc_calls": res.rpc.calls - calls_before,
    }


def _read_request(
    rpc: BitcoinRpc,
    pid: uuid.UUID,
    address: str,
    stored: Iterable[Any],
    known: Mapping[str, WalletTx | None] | None = None,
) -> list[Receipt]:
    """A complete read of one request: every tx paying ``address`` now, every stored receipt's tx."""
    stored = list(stored)
    txids = {r.txid for r in stored} | set(rpc.received_by_address(address))
    return _receipts(_read_closed(rpc, txids, known), {address: pid}, stored).get(pid, [])


def _read_closed(
    rpc: BitcoinRpc, txids: Iterable[str], known: Mapping[str, WalletTx | None] | None = None
) -> dict[str, WalletTx | None]:
    """Read every txid, then every wallet tx conflicting with one read, until nothing new appears.

    The reads are not one snapshot. A replacement broadcast (or mined) after the list of txids was
    taken shows up in the replaced tx's ``wallet_conflicts`` and is read with it. A tx read as alive
    just before it was replaced would count beside its replacement, which is impossible on the node
    (two conflicting txs are never both in the mempool or the chain): such pairs are read again until
    the answers agree. ``known`` holds txs already read in this run; None is a tx the wallet does
    not know. Raises ``NodeUnavailable`` if the node's answers keep changing.
    """
    txs: dict[str, WalletTx | None] = {}
    fresh = dict(known or {})
    todo = set(txids)
    for _ in range(CONSISTENT_READ_ATTEMPTS):
        while todo:
            txid = min(todo)
            todo.discard(txid)
            tx = fresh.pop(txid) if txid in fresh else rpc.get_transaction(txid)
            txs[txid] = tx
            if tx is not None:
                todo |= set(tx.wallet_conflicts) - txs.keys()
        stale = _alive_conflicts(txs)
        if not stale:
            return txs
        todo = stale
    raise NodeUnavailable("the node's answers about conflicting transactions kept changing; reading again later")


def _alive_conflicts(txs: Mapping[str, WalletTx | None]) -> set[str]:
    """Txs read as alive although another alive one conflicts with them: one of the reads is stale."""
    alive = {txid: tx for txid, tx in txs.items() if tx is not None and tx.alive}
    stale: set[str] = set()
    for txid, tx in alive.items():
        clashing = alive.keys() & set(tx.wallet_conflicts)
        if clashing:
            stale |= clashing | {txid}
    return stale


def _receipts(
    txs: Mapping[str, WalletTx | None], owners: Mapping[str, uuid.UUID], stored: Iterable[Any]
) -> dict[uuid.UUID, list[Receipt]]:
    """Per request (``owners``: address → id), what every output paying it is now.

    From the node's receives, and for each stored receipt of a tx that was read but lists no receive
    for it (conflicted: Core drops receives below depth 0; or unknown to the wallet), from the state of
    its tx: conflicted, replaced or forgotten money stops counting.
    """
    found: dict[tuple[str, int], tuple[uuid.UUID, Receipt]] = {}
    for tx in txs.values():
        if tx is None:
            continue
        for r in tx.receives:
            if r.address in owners:
                found[(tx.txid, r.vout)] = (owners[r.address], _receipt(tx, r.vout, r.amount_sat, tx.received_at))
    ids = set(owners.values())
    for row in stored:
        key = (row.txid, row.vout)
        if row.payment_id in ids and row.txid in txs and key not in found:
            tx = txs[row.txid]
            if tx is None:  # the wallet forgot it (e.g. abandoned): nothing to count
                receipt = Receipt(row.txid, row.vout, row.amount_sat, 0, False, row.replaceable, row.received_at)
            else:
                receipt = _receipt(tx, row.vout, row.amount_sat, row.received_at)
            found[key] = (row.payment_id, receipt)
    by_payment: dict[uuid.UUID, list[Receipt]] = {}
    for pid, receipt in found.values():
        by_payment.setdefault(pid, []).append(receipt)
    return by_payment


def _receipt(tx: WalletTx, vout: int, amount_sat: int, received_at: datetime) -> Receipt:
    return Receipt(
        txid=tx.txid,
        vout=vout,
        amount_sat=amount_sat,
        confirmations=tx.confirmations,
        in_mempool=tx.in_mempool,
        replaceable=tx.replaceable,
        received_at=received_at,
        block_hash=tx.block_hash,
        block_height=tx.block_height,
    )


def _in_doubt(state: str, block_height: int | None, tip: int, tips: Collection[ChainTip]) -> bool:
    """Whether a stored receipt must be read again: anything not confirmed, and a confirmed one whose
    block may have left the active chain (a branch off it covers that height, or it is above the tip)."""
    if state != TxState.CONFIRMED or block_height is None or block_height > tip:
        return True
    return any(t.off_chain_at(block_height) for t in tips)


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
