"""What the node says, as small frozen records: amounts in integer satoshis, times as aware UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Receive:
    """One output of a wallet transaction paying one of the wallet's addresses."""

    address: str
    vout: int
    amount_sat: int


@dataclass(frozen=True)
class WalletTx:
    """A wallet transaction as the node reports it now (``gettransaction`` plus the mempool check).

    ``confirmations`` is negative when a conflicting transaction is in the chain that many blocks
    deep. For such a conflicted transaction Core lists no receives: who it paid must be known from
    earlier reads. ``in_mempool`` is meaningful when ``confirmations == 0``: False means dropped,
    replaced or not yet re-accepted after a reorg.
    """

    txid: str
    confirmations: int
    in_mempool: bool
    block_hash: str | None
    block_height: int | None
    time_received: int  # unix seconds, as the node stamped it when it first saw the transaction
    replaceable: bool  # the node says it signals BIP125 (``bip125-replaceable == "yes"``)
    wallet_conflicts: tuple[str, ...]  # other wallet transactions spending one of its inputs
    receives: tuple[Receive, ...]

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.time_received, UTC)

    @property
    def alive(self) -> bool:
        return self.confirmations > 0 or (self.confirmations == 0 and self.in_mempool)


@dataclass(frozen=True)
class SinceEntry:
    """One entry of ``listsinceblock``: a wallet transaction touching ``address`` (if it has one)."""

    txid: str
    category: str  # send, receive, generate, immature, orphan
    address: str | None
    confirmations: int


@dataclass(frozen=True)
class SinceBlock:
    """Wallet transactions since a block: ``removed`` lists those in blocks a reorg undid (not all of
    them: only blocks between the cursor and the fork point). ``last_block`` is the next cursor."""

    transactions: tuple[SinceEntry, ...]
    removed: tuple[SinceEntry, ...]
    last_block: str
    from_start: bool  # the cursor was unknown to the node, so the whole wallet was listed


@dataclass(frozen=True)
class ChainTip:
    """A block without children (or the active tip) and how far its branch reaches back."""

    hash: str
    height: int
    branch_length: int  # blocks between it and the active chain; 0 for the active tip
    status: str  # active, valid-fork, valid-headers, headers-only, invalid

    def off_chain_at(self, height: int) -> bool:
        """Whether this branch holds a block at ``height`` that is not in the active chain."""
        return self.status != "active" and self.height - self.branch_length < height <= self.height


@dataclass(frozen=True)
class BlockHeader:
    hash: str
    height: int
    confirmations: int  # -1 when the block is not in the active chain
    time: int  # unix seconds, the header's timestamp
    previous_hash: str | None
