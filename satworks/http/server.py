"""``satworks web``: the intake app served with connection limits.

- A request's head must arrive within ``SATWORKS_HTTP_HEADER_TIMEOUT_S`` of the connection opening or of
  the previous response (aiohttp's keep-alive timer: it closes a connection still waiting for a complete
  head, so a client trickling its headers is cut off, and an idle keep-alive connection is closed then too).
- A body must arrive within ``SATWORKS_HTTP_BODY_TIMEOUT_S`` (408, closed: ``requests.raw_body``).
- At most ``SATWORKS_HTTP_MAX_CONNECTIONS`` connections per process: one more is closed at once, unread.
- A request aiohttp cannot parse (a header past 8,190 bytes, a bad header name) is a 400 in the one error
  shape, logged at debug level: it is the client's mistake, not ours.

Refused connections and timeouts are counted in ``satworks_http_connections_refused_total``,
``satworks_http_head_timeouts_total`` and ``satworks_http_request_timeouts_total``.

aiohttp builds its protocol object inside ``Application._make_handler``; ``_Runner`` swaps that server
for ``_Server`` (same arguments), the one place this module reaches into aiohttp's runner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from satworks.http import context as ctx
from satworks.http.app import create_app
from satworks.http.errors import error_response
from satworks.settings import Settings

log = logging.getLogger("satworks.http")


class _Handler(RequestHandler):
    """aiohttp's connection protocol, plus: protocol errors in the one error shape, and a count of the
    connections closed while a request head was still arriving (``on_head_timeout``)."""

    on_head_timeout: Any = staticmethod(lambda: None)
    _idle_since = 0.0  # connection opened, or last request answered (aiohttp's keep-alive timer starts then)
    _head_arriving = False  # bytes of a request head came since then
    _handling = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._idle_since = time.monotonic()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data and not self._handling:
            self._head_arriving = True
        super().data_received(data)

    def request_started(self) -> None:
        self._handling, self._head_arriving = True, False

    def request_finished(self) -> None:
        self._handling, self._idle_since = False, time.monotonic()

    def connection_lost(self, exc: BaseException | None) -> None:
        waited = time.monotonic() - self._idle_since
        # Closed by aiohttp's timer with the head still incomplete (a client giving up that late counts too).
        if self._head_arriving and not self._handling and waited >= self.keepalive_timeout * 0.95:
            self.on_head_timeout()
        super().connection_lost(exc)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        log.debug("malformed request: %s", exc, extra={"action": "http_malformed_request"})
        reason = getattr(exc, "message", None) or "the request could not be parsed"
        response = error_response(status, "bad_request", f"malformed request: {str(reason).splitlines()[0][:200]}")
        response.force_close()
        return response


class _Refused:
    """The protocol of a connection past the cap: closed at once (the client may retry elsewhere)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        pass


class _Server(web.Server):
    def __init__(self, *args: Any, max_connections: int, on_refused: Any, on_head_timeout: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_connections = max_connections
        self._on_refused = on_refused
        self._on_head_timeout = on_head_timeout
        # Counted here, not in ``connections``: connections accepted in one batch are all built before
        # the first of them is ``connection_made``.
        self._open: set[RequestHandler] = set()

    def __call__(self) -> Any:
        if len(self._open) >= self._max_connections:
            self._on_refused()
            return _Refused()
        handler = _Handler(self, loop=self._loop, **self._kwargs)
        handler.on_head_timeout = self._on_head_timeout
        self._open.add(handler)
        return handler

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._open.discard(handler)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        app = self.app
        metrics = app[ctx.HTTP_METRICS]
        return _Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            max_connections=app[ctx.SETTINGS].http_max_connections,
            on_refused=metrics.connections_refused.inc,
            on_head_timeout=metrics.head_timeouts.inc,
            **plain._kwargs,
        )


def runner(settings: Settings, app: web.Application | None = None) -> web.AppRunner:
    """The runner of ``app`` (the intake by default) with the limits above; call ``setup()`` on it."""
    return _Runner(
        app if app is not None else create_app(settings),
        access_log=None,
        keepalive_timeout=settings.http_header_timeout_s,
        handle_signals=False,
    )


def serve(settings: Settings, app: web.Application | None = None, *, reuse_port: bool = False) -> None:
    """Serve ``app`` (the intake by default) until SIGTERM or SIGINT, then finish the requests in flight;
    ``reuse_port``: one of several processes bound to the port (``satworks.http.serve``)."""

    async def main() -> None:
        web_runner = runner(settings, app)
        await web_runner.setup()
        site = web.TCPSite(web_runner, settings.http_host, settings.http_port, reuse_port=reuse_port or None)
        await site.start()
        print(f"satworks web on http://{settings.http_host}:{settings.http_port} (pid {os.getpid()})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await web_runner.cleanup()

    asyncio.run(main())
