"""Bitcoin Core JSON-RPC over python-bitcoinrpc: one keep-alive connection per thread, errors converted.

``AuthServiceProxy`` is not thread-safe, so each thread has its own ``http.client`` connection, which
we create and hand to the proxy (its public ``connection`` argument) to be able to look after it.
Its ``batch_`` is not used: it breaks against Bitcoin Core 28+ (2.0 answers carry no ``error``).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from typing import Any

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from satworks.errors import NodeUnavailable, PermanentError

WARMING_UP = -28
NO_JSON_ANSWER = (-342, -343)  # python-bitcoinrpc: the HTTP reply was not JSON-RPC (401, 503, a proxy page)


class RpcError(PermanentError):
    """The node answered with an error that asking again will not change."""

    code = "rpc_error"

    def __init__(self, rpc_code: int, message: str) -> None:
        super().__init__(f"bitcoind error {rpc_code}: {message}", details={"rpc_code": rpc_code})
        self.rpc_code = rpc_code


class JsonRpc:
    """``call(method, *params)`` against one node; raises ``NodeUnavailable`` or ``RpcError``.

    ``calls`` counts RPC calls made (for benchmarks and logs).
    """

    def __init__(self, url: str, *, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the node's RPC URL must be http(s)://user:password@host:port[/wallet/<name>]")
        self._url = url
        self._parts = parts
        self._timeout_s = timeout_s
        self._local = threading.local()
        self.calls = 0
        self.reconnects = 0

    def call(self, method: str, *params: Any, read_only: bool = False) -> Any:
        """Call ``method``. ``read_only`` marks calls that have no effect on the node."""
        self.calls += 1
        try:
            proxy = AuthServiceProxy(self._url, timeout=self._timeout_s, connection=self._connection())
            return getattr(proxy, method)(*params)
        except JSONRPCException as exc:
            error = exc.error if isinstance(exc.error, dict) else {}
            code, message = int(error.get("code", 0)), str(error.get("message", ""))
            if code == WARMING_UP or code in NO_JSON_ANSWER:
                self._drop()  # after a non-JSON answer the connection holds an unread body
                raise NodeUnavailable(f"bitcoind not ready ({code}): {message}") from exc
            raise RpcError(code, message) from exc
        except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
            self._drop()
            raise NodeUnavailable(f"bitcoind unreachable: {type(exc).__name__}") from exc

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's objects are collected)."""
        self._drop()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            host, port = self._parts.hostname or "", self._parts.port
            if self._parts.scheme == "https":
                conn = http.client.HTTPSConnection(host, port or 443, timeout=self._timeout_s)
            else:
                conn = http.client.HTTPConnection(host, port or 80, timeout=self._timeout_s)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
