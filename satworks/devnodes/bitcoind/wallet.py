"""The simulator's wallet: Core's view of its own transactions and the JSON it answers about them.

Depth, conflicts, trust, spendability and the entry shapes follow Core's ``wallet/receive.cpp``,
``wallet/rpc/transactions.cpp`` and ``wallet/feebumper.cpp``. One deliberate simplification: the
wallet holds no keys; addresses are random programs it remembers, every input is sized as a P2WPKH
spend (68 vB) and the fee rate is a fixed 20 sat/vB (what regtest setups get from
``-fallbackfee=0.0002``) unless a call names one.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from satworks.devnodes.bitcoind.chain import (
    COINBASE_MATURITY,
    Chain,
    ChainError,
    OutPoint,
    Tx,
    TxOut,
    estimate_vsize,
    make_tx,
    script_for,
)
from satworks.devnodes.bitcoind.jsonrpc import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ERROR,
    RPC_WALLET_INSUFFICIENT_FUNDS,
    RPC_WALLET_INVALID_LABEL_NAME,
    Btc,
    RpcError,
    format_btc,
)
from satworks.integrations.bitcoin.address import (
    decode_address,
    encode_base58_address,
    encode_segwit_address,
)

DEFAULT_FEE_RATE = 20  # sat/vB
WALLET_INCREMENTAL_FEE_RATE = 5  # sat/vB: Core's WALLET_INCREMENTAL_RELAY_FEE, the default bump
DUST_RELAY_FEE_RATE = 3  # sat/vB
CHANGE_SCRIPT_LEN = 22  # P2WPKH
P2WPKH_DUST = (9 + CHANGE_SCRIPT_LEN + 67) * DUST_RELAY_FEE_RATE
COST_OF_CHANGE_VSIZE = 31 + 68  # creating the change output now and spending it later


@dataclass
class WalletTx:
    tx: Tx
    time_received: int
    comment: str | None = None
    to: str | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    abandoned: bool = False

    @property
    def txid(self) -> str:
        return self.tx.txid


@dataclass(frozen=True)
class Coin:
    outpoint: OutPoint
    value: int
    depth: int


def dust_threshold(address: str) -> int:
    """Core's ``GetDustThreshold`` at the default 3 sat/vB dust relay fee."""
    dest = decode_address(address, "regtest")
    spend_size = 67 if dest is not None and dest.kind == "witness" else 148
    return (9 + len(script_for(address)) + spend_size) * DUST_RELAY_FEE_RATE


def new_program_address(address_type: str) -> str:
    if address_type == "bech32":
        return encode_segwit_address("regtest", 0, os.urandom(20))
    if address_type == "bech32m":
        return encode_segwit_address("regtest", 1, os.urandom(32))
    if address_type == "legacy":
        return encode_base58_address("regtest", "p2pkh", os.urandom(20))
    if address_type == "p2sh-segwit":
        return encode_base58_address("regtest", "p2sh", os.urandom(20))
    raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, f"Unknown address type '{address_type}'")


class Wallet:
    """One descriptor-like wallet: receive addresses (with labels), change addresses, its transactions."""

    def __init__(self, chain: Chain, name: str) -> None:
        self.chain = chain
        self.name = name
        self.labels: dict[str, str] = {}
        self.change: set[str] = set()
        self.txs: dict[str, WalletTx] = {}
        self.spends: dict[OutPoint, list[str]] = {}
        chain.listeners.append(self._saw)

    # ---- addresses

    def new_address(self, label: str, address_type: str) -> str:
        if label == "*":
            raise RpcError(RPC_WALLET_INVALID_LABEL_NAME, "Invalid label name")
        address = new_program_address(address_type)
        self.labels[address] = label
        return address

    def new_change_address(self, address_type: str = "bech32") -> str:
        address = new_program_address(address_type)
        self.change.add(address)
        return address

    def is_mine(self, address: str) -> bool:
        return address in self.labels or address in self.change

    # ---- what Core derives for each wallet transaction

    def _saw(self, tx: Tx) -> None:
        if tx.txid in self.txs:
            return
        if any(self.is_mine(o.address) for o in tx.outputs) or any(self._owned(op) for op in tx.inputs):
            self.txs[tx.txid] = WalletTx(tx, int(self.chain.clock()))
            for op in tx.inputs:
                self.spends.setdefault(op, []).append(tx.txid)

    def _owned(self, op: OutPoint) -> bool:
        parent = self.txs.get(op.txid)
        return parent is not None and self.is_mine(parent.tx.outputs[op.vout].address)

    def depth(self, txid: str) -> int:
        """Core's ``GetTxDepthInMainChain``: negative when a conflicting spend is in the chain."""
        confirmed = self.chain.tx_depth(txid)
        return confirmed if confirmed else -self._conflict_depth(txid, set())

    def _conflict_depth(self, txid: str, seen: set[str]) -> int:
        if txid in seen:
            return 0
        seen.add(txid)
        deepest = 0
        for op in self.chain.txs[txid].inputs:
            spender = self.chain.chain_spends.get(op)
            if spender is not None and spender != txid:
                deepest = max(deepest, self.chain.tx_depth(spender))
            elif op.txid in self.txs and op.txid not in self.chain.tx_block:
                deepest = max(deepest, self._conflict_depth(op.txid, seen))
        return deepest

    def debit(self, wtx: WalletTx) -> int:
        total = 0
        for op in wtx.tx.inputs:
            parent = self.txs.get(op.txid)
            if parent is not None and self.is_mine(parent.tx.outputs[op.vout].address):
                total += parent.tx.outputs[op.vout].value
        return total

    def immature_coinbase(self, wtx: WalletTx) -> bool:
        return wtx.tx.coinbase and COINBASE_MATURITY + 1 - self.depth(wtx.txid) > 0

    def credit(self, wtx: WalletTx) -> int:
        if self.immature_coinbase(wtx):
            return 0
        return sum(o.value for o in wtx.tx.outputs if self.is_mine(o.address))

    def trusted(self, txid: str) -> bool:
        """Core's ``CachedTxIsTrusted``: confirmed, or our own mempool spend of trusted coins."""
        depth = self.depth(txid)
        if depth != 0:
            return depth > 0
        wtx = self.txs[txid]
        if self.debit(wtx) <= 0 or txid not in self.chain.mempool:
            return False
        return all(self._owned(op) and self.trusted(op.txid) for op in wtx.tx.inputs)

    def is_spent(self, op: OutPoint) -> bool:
        """Spent by a wallet tx that is confirmed, unconfirmed or inactive but not conflicted/abandoned."""
        return any(not self.txs[s].abandoned and self.depth(s) >= 0 for s in self.spends.get(op, ()))

    def state_key(self, txid: str) -> str:
        """Where a wallet tx is (block hash, mempool or nowhere): a change is a walletnotify."""
        return self.chain.tx_block.get(txid) or ("mempool" if txid in self.chain.mempool else "")

    def conflicts(self, wtx: WalletTx) -> list[str]:
        found = {s for op in wtx.tx.inputs for s in self.spends.get(op, ()) if s != wtx.txid}
        return sorted(found)

    def rbf_status(self, wtx: WalletTx, depth: int) -> str:
        if depth > 0:
            return "no"
        if wtx.txid in self.chain.mempool:
            ancestors = self.chain.mempool_relatives(wtx.txid, self.chain.mempool_parents)
            signals = wtx.tx.signals_rbf or any(self.chain.txs[a].signals_rbf for a in ancestors)
            return "yes" if signals else "no"
        return "yes" if wtx.tx.signals_rbf else "unknown"

    # ---- coins and balances

    def available_coins(self) -> list[Coin]:
        """Core's ``AvailableCoins`` (only safe coins), oldest transaction first."""
        coins = []
        for wtx in self.txs.values():
            depth = self.depth(wtx.txid)
            if depth < 0 or self.immature_coinbase(wtx):
                continue
            if depth == 0 and wtx.txid not in self.chain.mempool:
                continue
            if not self.trusted(wtx.txid):
                continue
            for vout, out in enumerate(wtx.tx.outputs):
                op = OutPoint(wtx.txid, vout)
                if self.is_mine(out.address) and not self.is_spent(op):
                    coins.append(Coin(op, out.value, depth))
        return coins

    def balances(self, min_depth: int = 0) -> dict[str, int]:
        """Core's ``GetBalance``: trusted, untrusted pending and immature, in satoshis."""
        trusted = pending = immature = 0
        for wtx in self.txs.values():
            depth = self.depth(wtx.txid)
            is_trusted = self.trusted(wtx.txid)
            unspent = sum(
                o.value
                for vout, o in enumerate(wtx.tx.outputs)
                if self.is_mine(o.address) and not self.is_spent(OutPoint(wtx.txid, vout))
            )
            if self.immature_coinbase(wtx):
                if depth > 0:
                    immature += unspent
                continue
            if is_trusted and depth >= min_depth:
                trusted += unspent
            if not is_trusted and depth == 0 and wtx.txid in self.chain.mempool:
                pending += unspent
        return {"trusted": trusted, "untrusted_pending": pending, "immature": immature}

    # ---- spending

    def send(
        self,
        address: str,
        amount: int,
        *,
        subtract_fee: bool,
        replaceable: bool,
        fee_rate: int,
        comment: str | None,
        to: str | None,
    ) -> str:
        tx = self._fund([TxOut(address, amount)], subtract_fee=subtract_fee, fee_rate=fee_rate, preset=[])
        tx = self._finish(tx, replaceable)
        self._commit(tx, replace=False)
        wtx = self.txs[tx.txid]
        wtx.comment, wtx.to = comment or None, to or None
        return tx.txid

    def bump_fee(self, txid: str, fee_rate: int | None, payments: list[TxOut] | None = None) -> dict[str, Any]:
        """Core's ``bumpfee``: same inputs, the same payments (or ``payments``), a higher fee, the change
        pays for it."""
        wtx = self.txs.get(txid)
        if wtx is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
        tx = wtx.tx
        if any(OutPoint(txid, vout) in self.spends for vout in range(len(tx.outputs))):
            raise RpcError(RPC_INVALID_PARAMETER, "Transaction has descendants in the wallet")
        if txid in self.chain.mempool and self.chain.mempool_children(txid):
            raise RpcError(RPC_INVALID_PARAMETER, "Transaction has descendants in the mempool")
        if self.depth(txid) != 0:
            raise RpcError(RPC_WALLET_ERROR, "Transaction has been mined, or is conflicted with a mined transaction")
        if not tx.signals_rbf:
            raise RpcError(RPC_WALLET_ERROR, "Transaction is not BIP 125 replaceable")
        if wtx.replaced_by:
            raise RpcError(
                RPC_WALLET_ERROR,
                f"Cannot bump transaction {txid} which was already bumped by transaction {wtx.replaced_by}",
            )
        if not all(self._owned(op) for op in tx.inputs):
            raise RpcError(RPC_WALLET_ERROR, "Transaction contains inputs that don't belong to this wallet")
        old_fee = self.debit(wtx) - tx.value_out
        old_rate = -(-old_fee // tx.vsize)
        if fee_rate is None:
            fee_rate = old_rate + WALLET_INCREMENTAL_FEE_RATE
        elif fee_rate < old_rate + 1:
            minimum = old_fee + tx.vsize
            raise RpcError(
                RPC_INVALID_PARAMETER,
                f"Insufficient total fee {format_btc(fee_rate * tx.vsize)}, must be at least "
                f"{format_btc(minimum)} (oldFee {format_btc(old_fee)} + incrementalFee {format_btc(tx.vsize)})",
            )
        preset = [Coin(op, self.txs[op.txid].tx.outputs[op.vout].value, self.depth(op.txid)) for op in tx.inputs]
        if payments is None:
            payments = [o for o in tx.outputs if o.address not in self.change]
        replacement = self._finish(self._fund(payments, subtract_fee=False, fee_rate=fee_rate, preset=preset), True)
        self._commit(replacement, replace=True)
        new = self.txs[replacement.txid]
        wtx.replaced_by, new.replaces = replacement.txid, txid
        new.comment, new.to = wtx.comment, wtx.to
        new_fee = self.debit(new) - replacement.value_out
        return {"txid": replacement.txid, "origfee": Btc(old_fee), "fee": Btc(new_fee), "errors": []}

    def abandon(self, txid: str) -> None:
        wtx = self.txs.get(txid)
        if wtx is None:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
        if self.depth(txid) != 0 or txid in self.chain.mempool:
            raise RpcError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not eligible for abandonment")
        todo = [txid]
        while todo:
            current = self.txs[todo.pop()]
            if self.depth(current.txid) == 0 and not current.abandoned:
                current.abandoned = True
                outs = range(len(current.tx.outputs))
                todo.extend(s for v in outs for s in self.spends.get(OutPoint(current.txid, v), ()))

    def _fund(self, payments: list[TxOut], *, subtract_fee: bool, fee_rate: int, preset: list[Coin]) -> Tx:
        """Pick coins oldest first (confirmed ones before our unconfirmed change) until the plan fits."""
        taken = {c.outpoint for c in preset}
        coins = [c for c in self.available_coins() if c.outpoint not in taken]
        for pool in ([c for c in coins if c.depth >= 1], coins):
            chosen = list(preset)
            remaining = iter(pool)
            while True:
                plan = self._plan(chosen, payments, subtract_fee, fee_rate)
                if plan is not None:
                    outputs, change = plan
                    if change:
                        outputs.insert(random.randrange(len(outputs) + 1), TxOut(self.new_change_address(), change))
                    return make_tx([c.outpoint for c in chosen], outputs, replaceable=True, locktime=0)
                coin = next(remaining, None)
                if coin is None:
                    break
                chosen.append(coin)
        raise RpcError(RPC_WALLET_INSUFFICIENT_FUNDS, "Insufficient funds")

    def _plan(
        self, chosen: list[Coin], payments: list[TxOut], subtract_fee: bool, fee_rate: int
    ) -> tuple[list[TxOut], int] | None:
        """Outputs and change for these inputs, or ``None`` if they are not enough."""
        if not chosen:
            return None
        value_in = sum(c.value for c in chosen)
        total = sum(p.value for p in payments)
        scripts = [len(script_for(p.address)) for p in payments]
        fee_with_change = estimate_vsize(len(chosen), [*scripts, CHANGE_SCRIPT_LEN]) * fee_rate
        fee_without = estimate_vsize(len(chosen), scripts) * fee_rate
        min_change = max(P2WPKH_DUST, COST_OF_CHANGE_VSIZE * fee_rate)
        if not subtract_fee:
            for p in payments:
                if p.value < dust_threshold(p.address):
                    raise RpcError(RPC_WALLET_INSUFFICIENT_FUNDS, "Transaction amount too small")
            if value_in - total - fee_with_change >= min_change:
                return list(payments), value_in - total - fee_with_change
            return (list(payments), 0) if value_in - total >= fee_without else None
        if value_in < total:
            return None
        excess = value_in - total
        fee, change = (fee_with_change, excess) if excess >= min_change else (fee_without, 0)
        first = payments[0]
        if first.value - fee < dust_threshold(first.address):
            raise RpcError(RPC_WALLET_INSUFFICIENT_FUNDS, "The transaction amount is too small to pay the fee")
        return [TxOut(first.address, first.value - fee), *payments[1:]], change

    def _finish(self, tx: Tx, replaceable: bool) -> Tx:
        """Final nSequence (BIP125 or not) and anti-fee-sniping locktime, as Core's wallet sets them."""
        return make_tx(list(tx.inputs), list(tx.outputs), replaceable=replaceable, locktime=self.chain.height)

    def _commit(self, tx: Tx, *, replace: bool) -> None:
        try:
            self.chain.accept(tx, replace=replace)
        except ChainError as exc:
            raise RpcError(RPC_WALLET_ERROR, f"Transaction rejected by the mempool: {exc}") from None
