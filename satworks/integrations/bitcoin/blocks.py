"""Block reads for the draw beacon: the one place that asks a node for the block hash at a height."""

from __future__ import annotations

import re

from satworks.integrations.bitcoin.rpc import BitcoinRpc, RpcError

HEIGHT_OUT_OF_RANGE = -8  # getblockhash's RPC_INVALID_PARAMETER: no block at that height yet
_HASH = re.compile(r"[0-9a-f]{64}")


def block_hash_at(rpc: BitcoinRpc, height: int) -> str | None:
    """The best chain's block hash at ``height`` (64 lowercase hex digits), or None if the node has no block there.

    Raises ``NodeUnavailable`` (retry later) or ``RpcError`` (the node refused, or answered nonsense).
    """
    try:
        answer = rpc.call("getblockhash", height)
    except RpcError as exc:
        if exc.rpc_code == HEIGHT_OUT_OF_RANGE:
            return None
        raise
    if not isinstance(answer, str) or not _HASH.fullmatch(answer):
        raise RpcError(0, f"getblockhash answered {str(answer)[:80]!r}, not a block hash")
    return answer
