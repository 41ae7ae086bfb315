"""Bitcoin Core JSON-RPC over python-bitcoinrpc: one keep-alive connection per thread, errors converted.

``AuthServiceProxy`` is not thread-safe, so each thread has its own ``http.client`` connection, which
we create and hand to the proxy (its public ``connection`` argument) to be able to look after it.
Its ``batch_`` is not used: it breaks against Bitcoin Core 28+ (2.0 answers carry no ``error``).

Two defects of the library are handled here:

- It keeps a connection that Bitcoin Core closes after ``-rpcservertimeout`` idle seconds (30 by
  default), and the first call after a quiet spell then fails (jgarzik/python-bitcoinrpc#78). Before
  reusing a connection we look whether the node has closed it, and reconnect; see ``_send``.
- It sends a ``Decimal`` as a float (``EncodeDecimal``), which rounds a sub-satoshi value to a
  different valid amount and drops digits past 17. Decimals go as decimal strings, which Core accepts
  for every amount argument; floats are refused.
"""

from __future__ import annotations

import http.client
import logging
import select
import socket
import threading
import urllib.parse
from decimal import Decimal
from typing import Any

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from satworks.errors import NodeUnavailable, PermanentError

log = logging.getLogger(__name__)

WARMING_UP = -28
NO_JSON_ANSWER = (-342, -343)  # python-bitcoinrpc: the HTTP reply was not JSON-RPC (401, 503, a proxy page)
# A connection the node dropped: at send (broken pipe, reset) or before its answer (RemoteDisconnected).
DROPPED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected)


class RpcError(PermanentError):
    """The node answered with an error that asking again will not change."""

    code = "rpc_error"

    def __init__(self, rpc_code: int, message: str) -> None:
        super().__init__(f"bitcoind error {rpc_code}: {message}", details={"rpc_code": rpc_code})
        self.rpc_code = rpc_code


def wire(value: Any) -> Any:
    """A parameter as it must go on the wire: ``Decimal`` as its exact decimal string, no floats."""
    if isinstance(value, float):
        raise TypeError("RPC parameters must not be floats; pass amounts as Decimal or integer satoshis")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        return format(value, "f")
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    return value


class JsonRpc:
    """``call(method, *params)`` against one node; raises ``NodeUnavailable`` or ``RpcError``.

    ``calls`` counts RPC calls made, ``reconnects`` connections found closed by the node while idle
    and replaced without failing the call (both for benchmarks and logs).
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
        """Call ``method``. ``read_only`` methods may be sent a second time after a dropped connection."""
        args = [wire(p) for p in params]
        self.calls += 1
        try:
            return self._send(method, args, read_only)
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

    def _send(self, method: str, args: list[Any], read_only: bool) -> Any:
        conn = self._connection()
        reused = conn.sock is not None
        if reused and _closed_by_peer(conn.sock):
            # The node closed the idle connection (-rpcservertimeout): nothing of this call was sent.
            self._reconnected(conn, method, "closed while idle")
            reused = False
        proxy = AuthServiceProxy(self._url, timeout=self._timeout_s, connection=conn)
        try:
            return getattr(proxy, method)(*args)
        except DROPPED:
            # The close can still race with our request (it arrives after the look above). Sending it
            # again is safe only if it cannot have taken effect twice: a read has no effect, and on a
            # fresh connection the failure is not an idle close at all. Writes surface as
            # NodeUnavailable and the job's retry decides, as for any other lost answer.
            if not (reused and read_only):
                raise
            self._reconnected(conn, method, "dropped before answering")
            return getattr(AuthServiceProxy(self._url, timeout=self._timeout_s, connection=conn), method)(*args)

    def _reconnected(self, conn: http.client.HTTPConnection, method: str, why: str) -> None:
        conn.close()  # http.client opens a new socket on the next request
        self.reconnects += 1
        log.info("bitcoind connection %s; reconnecting", why, extra={"action": "rpc_reconnect", "method": method})

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


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket has something to read: between requests that can only be the
    node's FIN or RST (urllib3 looks the same way before reusing a pooled connection)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))
