"""Bitcoin Core JSON-RPC through python-bitcoinrpc, with its errors converted at this seam.

``AuthServiceProxy`` keeps one HTTP connection and is not thread-safe, so each thread gets its own;
after a timeout or a broken connection the proxy is unusable and is replaced. Its ``batch_`` is not
used: it breaks against Bitcoin Core 28+ (JSON-RPC 2.0 answers carry no ``error`` member).
"""

from __future__ import annotations

import http.client
import threading
from typing import Any

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from satworks.errors import NodeUnavailable, PermanentError

WARMING_UP = -28
INVALID_ADDRESS_OR_KEY = -5
WALLET_ERROR = -4
NO_JSON_ANSWER = (-342, -343)  # python-bitcoinrpc: the HTTP reply was not JSON-RPC (401, 503, a proxy page)


class RpcError(PermanentError):
    """The node answered with an error that asking again will not change."""

    code = "rpc_error"

    def __init__(self, rpc_code: int, message: str) -> None:
        super().__init__(f"bitcoind error {rpc_code}: {message}", details={"rpc_code": rpc_code})
        self.rpc_code = rpc_code


class BitcoinRpc:
    def __init__(self, url: str, *, timeout_s: float) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._local = threading.local()
        self.calls = 0  # RPC calls made by this client, for benchmarks and logs

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raises ``NodeUnavailable`` (retry later) or ``RpcError`` (the node said no)."""
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = self._local.proxy = AuthServiceProxy(self._url, timeout=self._timeout_s)
        self.calls += 1
        try:
            return getattr(proxy, method)(*params)
        except JSONRPCException as exc:
            error = exc.error if isinstance(exc.error, dict) else {}
            code, message = int(error.get("code", 0)), str(error.get("message", ""))
            if code == WARMING_UP or code in NO_JSON_ANSWER:
                self._local.proxy = None
                raise NodeUnavailable(f"bitcoind not ready ({code}): {message}") from exc
            raise RpcError(code, message) from exc
        except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
            self._local.proxy = None
            raise NodeUnavailable(f"bitcoind unreachable: {type(exc).__name__}") from exc
