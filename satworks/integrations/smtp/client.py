"""Sending one email over SMTP with the standard library's ``smtplib``; its errors converted at this seam.

``smtplib`` rather than ``aiosmtplib``: email jobs run in Dramatiq's worker threads, one session per
email under a small cap of simultaneous sessions, so an event loop would buy nothing and cost one
per send. Every reply code is kept: 4xx, timeouts and unreachable servers raise ``SmtpTempFailure``
(send again later), 5xx raise ``SmtpRejected`` (never again), with the server's code and text.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import lru_cache
from typing import Literal

from satworks.errors import InvalidPayload, SmtpRejected, SmtpTempFailure
from satworks.settings import Settings

Security = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send. ``security``: ``none`` (plain), ``starttls`` (upgrade, required) or
    ``tls`` (implicit TLS, usually port 465). ``ca_file`` adds a CA bundle for a relay with a private
    certificate. ``helo_name`` defaults to this machine's FQDN."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 30.0
    ca_file: str | None = None
    helo_name: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            connect_timeout_s=settings.smtp_connect_timeout_s,
            command_timeout_s=settings.smtp_timeout_s,
            ca_file=settings.smtp_ca_file,
            helo_name=settings.smtp_helo_name,
        )


@dataclass(frozen=True)
class SmtpReceipt:
    """The server's answer to the message's DATA, and the recipients it refused while taking the rest."""

    smtp_code: int
    smtp_reply: str
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)


def send(config: SmtpConfig, message: EmailMessage) -> SmtpReceipt:
    """Send ``message`` (it must carry its stable ``Message-ID``) in one SMTP session.

    Raises ``SmtpTempFailure``, ``SmtpRejected`` or ``InvalidPayload`` (no Message-ID, no recipient).
    A receipt with ``refused`` entries means the message went to the other recipients: sending it
    again would duplicate it for them.
    """
    if not message["Message-ID"]:
        raise InvalidPayload("an email needs its Message-ID before it is sent")
    with _smtp_errors():
        client = _open(config)
        try:
            refused = client.send_message(message)
            code, reply = client.data_reply or (250, b"")
            _quit(client)
        finally:
            client.close()
    return SmtpReceipt(
        smtp_code=code,
        smtp_reply=reply.decode("utf-8", "replace"),
        refused={addr: (rcode, rtext.decode("utf-8", "replace")) for addr, (rcode, rtext) in refused.items()},
    )


class _Smtp(smtplib.SMTP):
    """Keeps the reply to DATA (``sendmail`` drops it), e.g. ``250 2.0.0 Ok: queued as 4F2C1``."""

    data_reply: tuple[int, bytes] | None = None

    def data(self, msg: bytes | str) -> tuple[int, bytes]:  # type: ignore[override]
        self.data_reply = super().data(msg)
        return self.data_reply


class _SmtpTls(_Smtp, smtplib.SMTP_SSL):
    pass


def _open(config: SmtpConfig) -> _Smtp:
    context = ssl.create_default_context(cafile=config.ca_file) if config.security != "none" else None
    helo = config.helo_name or _fqdn()
    # TCP, the TLS handshake (implicit TLS) and the greeting under the connect timeout; the host is
    # also the name the certificate must carry.
    client: _Smtp
    if config.security == "tls":
        client = _SmtpTls(config.host, config.port, helo, timeout=config.connect_timeout_s, context=context)
    else:
        client = _Smtp(config.host, config.port, helo, timeout=config.connect_timeout_s)
    try:
        assert client.sock is not None
        client.sock.settimeout(config.command_timeout_s)
        client.ehlo()
        if config.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if config.username is not None:
            client.login(config.username, config.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _quit(client: smtplib.SMTP) -> None:
    # The message is accepted once DATA answered 2xx; a QUIT that fails changes nothing.
    with suppress(smtplib.SMTPException, OSError):
        client.quit()


@lru_cache(maxsize=1)
def _fqdn() -> str:
    return socket.getfqdn()  # may ask DNS: once per process, not once per email


@contextmanager
def _smtp_errors() -> Iterator[None]:
    try:
        yield
    except smtplib.SMTPRecipientsRefused as exc:
        # Nobody was accepted: sending again duplicates nothing; permanent only if every refusal is.
        replies = {addr: (code, text.decode("utf-8", "replace")) for addr, (code, text) in exc.recipients.items()}
        code, text = next(iter(replies.values()), (0, ""))
        summary = "; ".join(f"{addr}: {c} {t}" for addr, (c, t) in replies.items())
        if replies and all(500 <= c < 600 for c, _ in replies.values()):
            raise SmtpRejected(f"every recipient refused: {summary}", smtp_code=code, smtp_reply=text) from exc
        raise SmtpTempFailure(f"recipients refused for now: {summary}", smtp_code=code, smtp_reply=text) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, DATA, HELO, AUTH, greeting
        raise _by_code(exc.smtp_code, exc.smtp_error) from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise SmtpTempFailure(f"the mail server closed the connection: {exc}") from exc
    except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, no SMTPUTF8: the settings or the address
        raise SmtpRejected(f"the mail server cannot do this: {exc}") from exc
    except smtplib.SMTPException as exc:  # e.g. no AUTH method in common: a configuration error
        raise SmtpRejected(f"SMTP session failed: {exc}") from exc
    except TimeoutError as exc:
        raise SmtpTempFailure("the mail server timed out") from exc
    except OSError as exc:  # refused, unreachable, DNS, TLS handshake or certificate
        raise SmtpTempFailure(f"cannot reach the mail server: {type(exc).__name__}: {exc}") from exc


def _by_code(code: int, reply: bytes | str) -> SmtpTempFailure | SmtpRejected:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    if 500 <= code < 600:
        return SmtpRejected(f"the mail server refused: {code} {text}", smtp_code=code, smtp_reply=text)
    return SmtpTempFailure(f"the mail server deferred: {code} {text}", smtp_code=code, smtp_reply=text)
