"""The regtest chain of the bitcoind simulator: transactions, blocks, the mempool and reorgs.

Amounts are integer satoshis. Transactions are real unsigned serializations (no witnesses), so a
txid is the double SHA-256 of its hex and a block hash that of its 80-byte header; nothing checks
proof of work or signatures. Reorgs follow Core: the most-work valid chain wins (ties go to the
block seen first), disconnected transactions go back to the mempool only if their inputs still
exist, are unspent and (for coinbases) mature at the next height; everything else is dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from satworks.integrations.bitcoin.address import decode_address

COIN = 100_000_000
COINBASE_MATURITY = 100
HALVING_INTERVAL = 150  # regtest
SEQUENCE_RBF = 0xFFFFFFFD
SEQUENCE_FINAL_LOCKTIME = 0xFFFFFFFE
BLOCK_VERSION = 0x20000000
REGTEST_BITS = 0x207FFFFF

# the real regtest genesis block, so that getblockhash 0 answers what a real node does
GENESIS_COINBASE_HEX = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d01"
    "04455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f6620"
    "7365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548"
    "271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b"
    "8d578a4c702b6bf11d5fac00000000"
)
GENESIS_TIME = 1296688602
GENESIS_NONCE = 2


class ChainError(Exception):
    """A transaction the mempool refuses; the message is Core's reject reason."""


def hash256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def script_for(address: str) -> bytes:
    dest = decode_address(address, "regtest")
    if dest is None:
        raise ValueError(f"not a regtest address: {address}")
    return dest.script_pubkey


@dataclass(frozen=True)
class OutPoint:
    txid: str
    vout: int


@dataclass(frozen=True)
class TxOut:
    address: str
    value: int


@dataclass(frozen=True)
class Tx:
    txid: str
    inputs: tuple[OutPoint, ...]
    outputs: tuple[TxOut, ...]
    sequence: int
    locktime: int
    hex: str
    coinbase: bool = False

    @property
    def signals_rbf(self) -> bool:
        return not self.coinbase and self.sequence <= SEQUENCE_RBF

    @property
    def vsize(self) -> int:
        """Virtual size as if every input were a signed P2WPKH spend (68 vB each)."""
        return estimate_vsize(len(self.inputs), [len(script_for(o.address)) for o in self.outputs])

    @property
    def value_out(self) -> int:
        return sum(o.value for o in self.outputs)


def estimate_vsize(n_inputs: int, output_script_lengths: Iterable[int]) -> int:
    half_vbytes = 21 + 136 * n_inputs + sum(2 * (9 + n) for n in output_script_lengths)
    return (half_vbytes + 1) // 2


def _serialize(inputs: list[tuple[bytes, bytes, int]], outputs: list[TxOut], locktime: int, version: int) -> bytes:
    raw = version.to_bytes(4, "little") + _varint(len(inputs))
    for prevout, script_sig, sequence in inputs:
        raw += prevout + _varint(len(script_sig)) + script_sig + sequence.to_bytes(4, "little")
    raw += _varint(len(outputs))
    for out in outputs:
        script = script_for(out.address)
        raw += out.value.to_bytes(8, "little") + _varint(len(script)) + script
    return raw + locktime.to_bytes(4, "little")


def make_tx(inputs: list[OutPoint], outputs: list[TxOut], *, replaceable: bool, locktime: int) -> Tx:
    """An unsigned version-2 transaction; BIP125 signalling through nSequence, like Core's wallet."""
    sequence = SEQUENCE_RBF if replaceable else SEQUENCE_FINAL_LOCKTIME
    raw = _serialize(
        [(bytes.fromhex(op.txid)[::-1] + op.vout.to_bytes(4, "little"), b"", sequence) for op in inputs],
        outputs,
        locktime,
        2,
    )
    txid = hash256(raw)[::-1].hex()
    return Tx(txid, tuple(inputs), tuple(outputs), sequence, locktime, raw.hex())


def make_coinbase(height: int, address: str, value: int) -> Tx:
    """A coinbase paying ``value`` to ``address``: BIP34 height push plus a random extranonce."""
    height_bytes = height.to_bytes((height.bit_length() + 8) // 8 or 1, "little")
    script_sig = bytes([len(height_bytes)]) + height_bytes + b"\x08" + os.urandom(8)
    out = TxOut(address, value)
    raw = _serialize([(bytes(32) + b"\xff\xff\xff\xff", script_sig, 0xFFFFFFFF)], [out], 0, 2)
    return Tx(hash256(raw)[::-1].hex(), (), (out,), 0xFFFFFFFF, 0, raw.hex(), coinbase=True)


def merkle_root(txids: list[str]) -> bytes:
    level = [bytes.fromhex(t)[::-1] for t in txids]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [hash256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True)
class Block:
    hash: str
    height: int
    prev: str | None
    time: int
    nonce: int
    merkle_root: str
    txids: tuple[str, ...]
    header: bytes
    seq: int


@dataclass
class MempoolEntry:
    time: int
    height: int
    fee: int


def subsidy(height: int) -> int:
    halvings = height // HALVING_INTERVAL
    return 0 if halvings >= 64 else (50 * COIN) >> halvings


@dataclass
class Chain:
    """Blocks (all ever seen, with the active chain by height), every transaction, and the mempool."""

    clock: Callable[[], float] = time.time
    txs: dict[str, Tx] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    active: list[str] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)
    tx_block: dict[str, str] = field(default_factory=dict)
    chain_spends: dict[OutPoint, str] = field(default_factory=dict)
    mempool: dict[str, MempoolEntry] = field(default_factory=dict)
    mempool_spends: dict[OutPoint, str] = field(default_factory=dict)
    tip_changes: list[str] = field(default_factory=list)
    listeners: list[Callable[[Tx], None]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        raw = bytes.fromhex(GENESIS_COINBASE_HEX)
        coinbase_txid = hash256(raw)[::-1].hex()
        self.txs[coinbase_txid] = Tx(coinbase_txid, (), (), 0xFFFFFFFF, 0, GENESIS_COINBASE_HEX, coinbase=True)
        genesis = self._block(None, 0, (coinbase_txid,), GENESIS_TIME, GENESIS_NONCE, version=1)
        self.blocks[genesis.hash] = genesis
        self._connect(genesis)

    # ---- reading

    @property
    def tip(self) -> Block:
        return self.blocks[self.active[-1]]

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def is_active(self, block_hash: str) -> bool:
        block = self.blocks.get(block_hash)
        return block is not None and block.height < len(self.active) and self.active[block.height] == block_hash

    def block_depth(self, block: Block) -> int:
        """Core's getblock ``confirmations``: -1 off the active chain."""
        return self.height - block.height + 1 if self.is_active(block.hash) else -1

    def tx_depth(self, txid: str) -> int:
        """Confirmations in the active chain, 0 when not in it."""
        block_hash = self.tx_block.get(txid)
        return 0 if block_hash is None else self.height - self.blocks[block_hash].height + 1

    def block_of(self, txid: str) -> Block | None:
        block_hash = self.tx_block.get(txid)
        return None if block_hash is None else self.blocks[block_hash]

    def median_time_past(self, block: Block) -> int:
        times: list[int] = []
        current: Block | None = block
        while current is not None and len(times) < 11:
            times.append(current.time)
            current = self.blocks[current.prev] if current.prev else None
        return sorted(times)[len(times) // 2]

    def fork_point(self, block: Block) -> Block:
        while not self.is_active(block.hash):
            assert block.prev is not None
            block = self.blocks[block.prev]
        return block

    def descendants(self, block_hash: str) -> list[str]:
        out, stack = [], [block_hash]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(self.children.get(current, ()))
        return out

    def block_hex(self, block: Block) -> str:
        return block.header.hex() + _varint(len(block.txids)).hex() + "".join(self.txs[t].hex for t in block.txids)

    def mempool_parents(self, txid: str) -> list[str]:
        return sorted({op.txid for op in self.txs[txid].inputs if op.txid in self.mempool})

    def mempool_children(self, txid: str) -> list[str]:
        tx = self.txs[txid]
        found = (self.mempool_spends.get(OutPoint(txid, vout)) for vout in range(len(tx.outputs)))
        return sorted({c for c in found if c is not None})

    def mempool_relatives(self, txid: str, step: Callable[[str], list[str]]) -> set[str]:
        """All mempool ancestors (step=parents) or descendants (step=children), without ``txid``."""
        seen: set[str] = set()
        stack = step(txid)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(step(current))
        return seen

    # ---- mining and reorgs

    def mine(self, count: int, address: str) -> list[str]:
        """Mine ``count`` blocks paying ``address``; the first takes the whole mempool."""
        hashes = []
        for _ in range(count):
            txids = list(self.mempool)
            fees = sum(entry.fee for entry in self.mempool.values())
            height = self.height + 1
            coinbase = make_coinbase(height, address, subsidy(height) + fees)
            self._register(coinbase)
            block_time = max(self.median_time_past(self.tip) + 1, int(self.clock()))
            block = self._block(self.tip, height, (coinbase.txid, *txids), block_time, int.from_bytes(os.urandom(4)))
            self._add_block(block)
            self._activate_best_chain()
            hashes.append(block.hash)
        return hashes

    def invalidate(self, block_hash: str) -> None:
        """Core's ``invalidateblock``: the block and its descendants can no longer be in the chain."""
        block = self.blocks[block_hash]
        self.invalid.update(self.descendants(block_hash))
        if self.is_active(block_hash):
            disconnected: list[str] = []
            while self.height >= block.height:
                disconnected[:0] = self._disconnect_tip().txids[1:]
            self._refill_mempool(disconnected)
            self.tip_changes.append(self.tip.hash)
        self._activate_best_chain()

    def reconsider(self, block_hash: str) -> None:
        """Core's ``reconsiderblock``: clear the block, its descendants and ancestors, then reorg."""
        block: Block | None = self.blocks[block_hash]
        self.invalid.difference_update(self.descendants(block_hash))
        while block is not None:
            self.invalid.discard(block.hash)
            block = self.blocks[block.prev] if block.prev else None
        self._activate_best_chain()

    def _block(
        self, prev: Block | None, height: int, txids: tuple[str, ...], block_time: int, nonce: int, version: int = 0
    ) -> Block:
        root = merkle_root(list(txids))
        header = (
            (version or BLOCK_VERSION).to_bytes(4, "little")
            + (bytes.fromhex(prev.hash)[::-1] if prev else bytes(32))
            + root
            + block_time.to_bytes(4, "little")
            + REGTEST_BITS.to_bytes(4, "little")
            + nonce.to_bytes(4, "little")
        )
        block_hash = hash256(header)[::-1].hex()
        prev_hash = prev.hash if prev else None
        return Block(block_hash, height, prev_hash, block_time, nonce, root[::-1].hex(), txids, header, next(self._seq))

    def _add_block(self, block: Block) -> None:
        self.blocks[block.hash] = block
        if block.prev:
            self.children.setdefault(block.prev, []).append(block.hash)

    def _activate_best_chain(self) -> None:
        best = max((b for b in self.blocks.values() if b.hash not in self.invalid), key=lambda b: (b.height, -b.seq))
        if best.hash == self.tip.hash:
            return
        path = []
        block = best
        while not self.is_active(block.hash):
            path.append(block)
            assert block.prev is not None
            block = self.blocks[block.prev]
        disconnected: list[str] = []
        while self.tip.hash != block.hash:
            disconnected[:0] = self._disconnect_tip().txids[1:]
        for step in reversed(path):
            self._connect(step)
        self._refill_mempool(disconnected)
        self.tip_changes.append(self.tip.hash)

    def _connect(self, block: Block) -> None:
        self.active.append(block.hash)
        for txid in block.txids:
            self.tx_block[txid] = block.hash
            tx = self.txs[txid]
            if txid in self.mempool:
                self._drop_from_mempool(txid)
            for op in tx.inputs:
                conflict = self.mempool_spends.get(op)
                if conflict is not None:
                    self._drop_with_descendants(conflict)
                self.chain_spends[op] = txid
            self._notify(tx)

    def _disconnect_tip(self) -> Block:
        block = self.blocks[self.active.pop()]
        for txid in reversed(block.txids):
            del self.tx_block[txid]
            for op in self.txs[txid].inputs:
                if self.chain_spends.get(op) == txid:
                    del self.chain_spends[op]
        return block

    def _refill_mempool(self, disconnected: list[str]) -> None:
        """Core's ``MaybeUpdateMempoolForReorg``: re-admit what is still valid at the new tip."""
        previous = list(self.mempool.items())
        self.mempool.clear()
        self.mempool_spends.clear()
        candidates = [(t, None) for t in disconnected] + [(t, e) for t, e in previous]
        for txid, entry in candidates:
            if txid in self.tx_block or txid in self.mempool:
                continue
            try:
                self.accept(self.txs[txid], entry=entry)
            except ChainError:
                continue

    # ---- the mempool

    def accept(self, tx: Tx, *, replace: bool = False, entry: MempoolEntry | None = None) -> None:
        """Admit ``tx`` to the mempool (Core's ATMP, reduced); ``replace`` evicts what it conflicts with."""
        if tx.txid in self.tx_block:
            raise ChainError("txn-already-known")
        if tx.txid in self.mempool:
            raise ChainError("txn-already-in-mempool")
        conflicts: set[str] = set()
        value_in = 0
        for op in tx.inputs:
            parent = self.txs.get(op.txid)
            if parent is None or op.vout >= len(parent.outputs) or op in self.chain_spends:
                raise ChainError("bad-txns-inputs-missingorspent")
            parent_block = self.block_of(op.txid)
            if parent_block is None and op.txid not in self.mempool:
                raise ChainError("bad-txns-inputs-missingorspent")
            if parent.coinbase and parent_block and self.height + 1 - parent_block.height < COINBASE_MATURITY:
                raise ChainError("bad-txns-premature-spend-of-coinbase")
            other = self.mempool_spends.get(op)
            if other is not None:
                if not replace:
                    raise ChainError("txn-mempool-conflict")
                conflicts.add(other)
            value_in += parent.outputs[op.vout].value
        if value_in < tx.value_out:
            raise ChainError("bad-txns-in-belowout")
        for other in conflicts:
            self._drop_with_descendants(other)
        self._register(tx)
        self.mempool[tx.txid] = entry or MempoolEntry(int(self.clock()), self.height, value_in - tx.value_out)
        for op in tx.inputs:
            self.mempool_spends[op] = tx.txid
        self._notify(tx)

    def _drop_from_mempool(self, txid: str) -> None:
        del self.mempool[txid]
        for op in self.txs[txid].inputs:
            if self.mempool_spends.get(op) == txid:
                del self.mempool_spends[op]

    def _drop_with_descendants(self, txid: str) -> None:
        for victim in [txid, *self.mempool_relatives(txid, self.mempool_children)]:
            if victim in self.mempool:
                self._drop_from_mempool(victim)

    def _register(self, tx: Tx) -> None:
        self.txs.setdefault(tx.txid, tx)

    def _notify(self, tx: Tx) -> None:
        for listener in self.listeners:
            listener(tx)
