"""A real SMTP server (aiosmtpd) that keeps what it receives, for development and tests.

It speaks the protocol for real (EHLO, optional STARTTLS or implicit TLS, optional AUTH, pipelined
RCPTs, DATA) so satworks' SMTP client is exercised end to end. For tests it can answer a chosen
code for chosen recipients (by local part: ``temp-fail@…`` → 451 at RCPT, ``reject@…`` → 550,
``data-temp-fail@…``/``data-reject@…`` → 451/554 at DATA), be slow (``delay_s`` before answering
DATA), and it counts simultaneous sessions (``sessions.peak``) so a concurrency cap can be checked.
All state belongs to the server's event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from satworks.devnodes.smtp.store import MessageStore
from satworks.devnodes.smtp.web import create_app

log = logging.getLogger("satworks.devnodes.smtp")

HOSTNAME = "satworks-devnode"


@dataclass(frozen=True)
class Reply:
    """An SMTP answer given at ``stage`` (``rcpt`` or ``data``) instead of accepting."""

    code: int
    text: str
    stage: str = "rcpt"

    def line(self) -> str:
        return f"{self.code} {self.text}"


DEFAULT_REPLIES: Mapping[str, Reply] = {
    "temp-fail": Reply(451, "4.3.0 Temporary failure (devnode rule)"),
    "reject": Reply(550, "5.1.1 Mailbox unavailable (devnode rule)"),
    "data-temp-fail": Reply(451, "4.3.0 Try again later (devnode rule)", "data"),
    "data-reject": Reply(554, "5.6.0 Message refused (devnode rule)", "data"),
}


@dataclass(frozen=True)
class SinkConfig:
    """``replies`` maps a full address or a local part (``+tag`` ignored) to a reply; ``auth`` is (user,
    password) and needs TLS; ``tls_cert``/``tls_key`` enable STARTTLS, or implicit TLS with ``implicit_tls``."""

    replies: Mapping[str, Reply] = field(default_factory=lambda: dict(DEFAULT_REPLIES))
    delay_s: float = 0.0
    max_messages: int = 1000
    maildir: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    implicit_tls: bool = False
    auth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both a TLS certificate and its key, or neither")
        if self.implicit_tls and self.tls_cert is None:
            raise ValueError("implicit TLS needs a certificate and key")
        if self.auth is not None and self.tls_cert is None:
            raise ValueError("AUTH needs TLS (a certificate and key): passwords never cross in clear")


class SessionGauge:
    """Simultaneous SMTP sessions now and at the peak since the last reset (and their transports, to close)."""

    def __init__(self) -> None:
        self.open: set[asyncio.BaseTransport] = set()
        self.peak = 0
        self.total = 0

    @property
    def now(self) -> int:
        return len(self.open)

    def enter(self, transport: asyncio.BaseTransport) -> None:
        self.open.add(transport)
        self.total += 1
        self.peak = max(self.peak, self.now)

    def leave(self, transport: asyncio.BaseTransport) -> None:
        self.open.discard(transport)

    def reset(self) -> None:
        self.peak = self.now
        self.total = 0

    def as_dict(self) -> dict[str, int]:
        return {"sessions_now": self.now, "sessions_peak": self.peak, "sessions_total": self.total}


class _CountedSMTP(SMTP):
    """aiosmtpd's protocol, counted once per TCP connection (STARTTLS calls ``connection_made`` again)."""

    gauge: SessionGauge
    _counted: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._counted is None:
            self._counted = transport
            self.gauge.enter(transport)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            if self._counted is not None:
                self.gauge.leave(self._counted)
                self._counted = None


class _Handler:
    def __init__(self, config: SinkConfig, store: MessageStore) -> None:
        self.config = config
        self.store = store
        self.refused = 0

    def _reply_for(self, address: str) -> Reply | None:
        address = address.lower()
        local = address.rpartition("@")[0].partition("+")[0]
        return self.config.replies.get(address) or self.config.replies.get(local)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._reply_for(address)
        if reply is not None and reply.stage == "rcpt":
            self.refused += 1
            return reply.line()
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.config.delay_s > 0:
            await asyncio.sleep(self.config.delay_s)  # a slow relay, on purpose
        for address in envelope.rcpt_tos:
            reply = self._reply_for(address)
            if reply is not None and reply.stage == "data":
                self.refused += 1
                return reply.line()
        raw = envelope.original_content or b""
        stored = self.store.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        log.info(
            "message received", extra={"action": "smtp_received", "id": stored.id, "rcpts": len(envelope.rcpt_tos)}
        )
        return f"250 2.0.0 Ok: queued as {stored.id}"


class SmtpSink:
    """The SMTP server plus its HTTP listing, on the running loop; ports 0 pick free ones."""

    def __init__(self, config: SinkConfig | None = None) -> None:
        self.config = config or SinkConfig()
        self.store = MessageStore(max_messages=self.config.max_messages, maildir=self.config.maildir)
        self.sessions = SessionGauge()
        self.handler = _Handler(self.config, self.store)
        self.smtp_port: int | None = None
        self.http_port: int | None = None
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None

    def stats(self) -> dict[str, int]:
        return {**self.sessions.as_dict(), "messages": len(self.store.all()), "refused": self.handler.refused}

    async def start(self, host: str = "127.0.0.1", smtp_port: int = 1025, http_port: int | None = 8025) -> None:
        loop = asyncio.get_running_loop()
        tls = self._tls_context()
        starttls = tls if tls is not None and not self.config.implicit_tls else None
        authenticator = self._authenticate if self.config.auth is not None else None

        def protocol() -> _CountedSMTP:
            server = _CountedSMTP(
                self.handler,
                hostname=HOSTNAME,
                ident="satworks devnode smtp",
                enable_SMTPUTF8=True,
                tls_context=starttls,
                require_starttls=starttls is not None,
                authenticator=authenticator,
                # STARTTLS: AUTH only after the upgrade, and required. Implicit TLS: the whole session is
                # encrypted but aiosmtpd cannot tell, so AUTH is offered without being required.
                auth_required=authenticator is not None and starttls is not None,
                auth_require_tls=starttls is not None,
                loop=loop,
            )
            server.gauge = self.sessions
            return server

        ssl_arg = tls if self.config.implicit_tls else None
        self._server = await loop.create_server(protocol, host, smtp_port, ssl=ssl_arg)
        self.smtp_port = self._server.sockets[0].getsockname()[1]
        if http_port is not None:
            self._runner = web.AppRunner(create_app(self), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, http_port)
            await site.start()
            self.http_port = self._runner.addresses[0][1]
        log.info(
            "smtp devnode listening",
            extra={"action": "smtp_devnode_up", "smtp_port": self.smtp_port, "http_port": self.http_port},
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            self._server.close()
            for transport in list(self.sessions.open):  # Server.close leaves open sessions running
                transport.close()
            await self._server.wait_closed()
            self._server = None

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None or self.config.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.config.auth is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = self.config.auth
        ok = hmac.compare_digest(auth_data.login, user.encode()) & hmac.compare_digest(
            auth_data.password, password.encode()
        )
        return AuthResult(success=bool(ok), handled=False)
