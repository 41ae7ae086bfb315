"""The Bitcoin Core client satworks uses: typed methods over JSON-RPC, answers as frozen records.

Method names, argument lists, error codes and JSON shapes stay in this module; callers get records
(``records.py``) in integer satoshis and the project's errors: ``NodeUnavailable`` (retry later),
``RpcError`` (the node refused), ``BadAnswer`` (the node answered something we cannot read).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from satworks.errors import PermanentError
from satworks.integrations.bitcoin.records import BlockHeader, ChainTip, Receive, SinceBlock, SinceEntry, WalletTx
from satworks.integrations.bitcoin.transport import JsonRpc, RpcError
from satworks.payments.amounts import btc_to_sat

__all__ = ["BadAnswer", "BitcoinRpc", "RpcError"]

log = logging.getLogger(__name__)
T = TypeVar("T")

WALLET_ERROR = -4  # e.g. "Address not found in wallet"
INVALID_ADDRESS_OR_KEY = -5  # unknown transaction or block; "Transaction not in mempool"
INVALID_PARAMETER = -8  # e.g. "Block height out of range"


class BadAnswer(PermanentError):
    """The node answered, but not in the shape its documentation gives."""

    code = "node_bad_answer"


_BLOCK_HASH = re.compile(r"[0-9a-f]{64}")


class BitcoinRpc:
    """One Bitcoin Core node (a wallet URL: ``http://user:password@host:port/wallet/<name>``).

    Safe to share between threads (one connection per thread). Every call has ``timeout_s``.
    """

    def __init__(self, url: str, *, timeout_s: float, transport: JsonRpc | None = None) -> None:
        """``transport`` replaces the JSON-RPC transport built from ``url`` (tests observe calls with it)."""
        self._rpc = transport or JsonRpc(url, timeout_s=timeout_s)

    @property
    def calls(self) -> int:
        """RPC calls made so far (for benchmarks and logs)."""
        return self._rpc.calls

    @property
    def reconnects(self) -> int:
        """Connections the node had closed while idle, replaced without failing a call."""
        return self._rpc.reconnects

    def call(self, method: str, *params: Any, read_only: bool = False) -> Any:
        """The raw call, for regtest tooling and tests; satworks itself uses the typed methods."""
        return self._rpc.call(method, *params, read_only=read_only)

    def close(self) -> None:
        self._rpc.close()

    # ---- addresses

    def new_address(self, label: str) -> str:
        """A fresh bech32 receive address labelled ``label``."""
        address = self._rpc.call("getnewaddress", label, "bech32")
        if not isinstance(address, str):
            raise BadAnswer(f"getnewaddress answered {type(address).__name__}")
        return address

    def is_watched(self, address: str) -> bool:
        """Whether the wallet watches ``address`` (its own or watch-only): -4 says it does not."""
        try:
            self._rpc.call("getreceivedbyaddress", address, 0, read_only=True)
        except RpcError as exc:
            if exc.rpc_code == WALLET_ERROR:
                return False
            raise
        return True

    def received_by_address(self, address: str) -> list[str]:
        """Txids of every wallet transaction paying ``address`` that is not conflicted (depth >= 0)."""
        listed = self._rpc.call("listreceivedbyaddress", 0, True, True, address, read_only=True)
        with _reading("listreceivedbyaddress"):
            return [str(txid) for entry in listed for txid in entry.get("txids", [])]

    # ---- transactions

    def get_transaction(self, txid: str) -> WalletTx | None:
        """The wallet transaction ``txid`` now, or None if the wallet does not know it.

        An unconfirmed one is looked up in the mempool; when it is missing there it is read again,
        because it may have been mined between the two calls (1 call when confirmed or conflicted,
        2 in the mempool, 3 when dropped).
        """
        answer = self._transaction(txid)
        if answer is None:
            return None
        in_mempool = False
        if _int(answer, "confirmations") == 0:
            in_mempool = self._in_mempool(txid)
            if not in_mempool:
                answer = self._transaction(txid)
                if answer is None:
                    return None
        with _reading("gettransaction"):
            return _wallet_tx(answer, in_mempool)

    def _transaction(self, txid: str) -> dict[str, Any] | None:
        try:
            answer = self._rpc.call("gettransaction", txid, True, read_only=True)
        except RpcError as exc:
            if exc.rpc_code == INVALID_ADDRESS_OR_KEY:
                return None
            raise
        if not isinstance(answer, dict):
            raise BadAnswer(f"gettransaction answered {type(answer).__name__}")
        return answer

    def _in_mempool(self, txid: str) -> bool:
        try:
            self._rpc.call("getmempoolentry", txid, read_only=True)
        except RpcError as exc:
            if exc.rpc_code == INVALID_ADDRESS_OR_KEY:
                return False
            raise
        return True

    def list_since_block(self, cursor: str | None) -> SinceBlock:
        """Wallet transactions since block ``cursor`` (watch-only included, removed ones listed).

        From the start when ``cursor`` is None or unknown to the node (a node replaced or resynced onto
        another chain): slower, but never stuck.
        """
        answer: Any = None
        if cursor is not None:
            try:
                answer = self._rpc.call("listsinceblock", cursor, 1, True, True, read_only=True)
            except RpcError as exc:
                if exc.rpc_code != INVALID_ADDRESS_OR_KEY:
                    raise
                log.warning("cursor unknown to the node; reading the whole wallet", extra={"action": "cursor_reset"})
        from_start = answer is None
        if answer is None:
            answer = self._rpc.call("listsinceblock", None, 1, True, True, read_only=True)
        with _reading("listsinceblock"):
            return SinceBlock(
                transactions=tuple(_since_entry(e) for e in answer["transactions"]),
                removed=tuple(_since_entry(e) for e in answer.get("removed", [])),
                last_block=str(answer["lastblock"]),
                from_start=from_start,
            )

    # ---- blocks

    def block_count(self) -> int:
        """Height of the node's best block."""
        count = self._rpc.call("getblockcount", read_only=True)
        if not isinstance(count, int) or isinstance(count, bool):
            raise BadAnswer(f"getblockcount answered {type(count).__name__}")
        return count

    def chain_tips(self) -> tuple[ChainTip, ...]:
        """Every branch the node knows: a block off the active chain lies on one of them."""
        answer = self._rpc.call("getchaintips", read_only=True)
        with _reading("getchaintips"):
            return tuple(
                ChainTip(str(t["hash"]), int(t["height"]), int(t["branchlen"]), str(t["status"])) for t in answer
            )

    def get_block_hash(self, height: int) -> str | None:
        """Hash of the active chain's block at ``height`` (64 lowercase hex digits); None above the tip
        (not mined yet). Raises ``BadAnswer`` when the node answers anything but a block hash."""
        try:
            answer = self._rpc.call("getblockhash", height, read_only=True)
        except RpcError as exc:
            if exc.rpc_code == INVALID_PARAMETER:
                return None
            raise
        if not isinstance(answer, str) or not _BLOCK_HASH.fullmatch(answer):
            raise BadAnswer(f"getblockhash answered {str(answer)[:80]!r}, not a block hash")
        return answer

    def get_block_header(self, block_hash: str) -> BlockHeader | None:
        """The header of ``block_hash`` with its depth (-1 off the active chain); None if unknown."""
        try:
            answer = self._rpc.call("getblockheader", block_hash, True, read_only=True)
        except RpcError as exc:
            if exc.rpc_code == INVALID_ADDRESS_OR_KEY:
                return None
            raise
        with _reading("getblockheader"):
            return BlockHeader(
                hash=str(answer["hash"]),
                height=int(answer["height"]),
                confirmations=int(answer["confirmations"]),
                time=int(answer["time"]),
                previous_hash=answer.get("previousblockhash"),
            )


@contextmanager
def _reading(method: str) -> Iterator[None]:
    """Turn a missing or mistyped field of ``method``'s answer into ``BadAnswer``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadAnswer(f"unexpected answer to {method}: {type(exc).__name__} {exc}") from exc


def _int(answer: dict[str, Any], key: str) -> int:
    with _reading("gettransaction"):
        return int(answer[key])


def _optional(answer: dict[str, Any], key: str, convert: Callable[[Any], T]) -> T | None:
    value = answer.get(key)
    return None if value is None else convert(value)


def _wallet_tx(answer: dict[str, Any], in_mempool: bool) -> WalletTx:
    confirmations = int(answer["confirmations"])
    return WalletTx(
        txid=str(answer["txid"]),
        confirmations=confirmations,
        in_mempool=in_mempool and confirmations == 0,
        block_hash=_optional(answer, "blockhash", str),
        block_height=_optional(answer, "blockheight", int),
        time_received=int(answer.get("timereceived") or answer["time"]),
        replaceable=answer.get("bip125-replaceable") == "yes",
        wallet_conflicts=tuple(str(t) for t in answer.get("walletconflicts", [])),
        receives=tuple(
            Receive(address=str(d["address"]), vout=int(d["vout"]), amount_sat=btc_to_sat(d["amount"]))
            for d in answer.get("details", [])
            if d.get("category") == "receive" and "address" in d
        ),
    )


def _since_entry(entry: dict[str, Any]) -> SinceEntry:
    return SinceEntry(
        txid=str(entry["txid"]),
        category=str(entry["category"]),
        address=_optional(entry, "address", str),
        confirmations=int(entry["confirmations"]),
    )
