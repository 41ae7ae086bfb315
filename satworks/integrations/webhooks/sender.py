"""POSTing signed webhook events with aiohttp, behind the SSRF guard, each attempt returned as a record.

aiohttp rather than httpx: its connector takes a resolver (``TCPConnector(resolver=...)``, a public
extension point), so the guard sees every address the connector will dial and nothing else resolves
the name again; httpx has no resolver hook short of replacing httpcore's network backend. It is
also already the intake's HTTP stack. A sender holds one pooled session: create it, use it and
close it on one event loop (a worker process's loop, e.g. Dramatiq's ``AsyncIO`` middleware).

The signature is the intake's scheme (``satworks.signatures``): ``t=<unix>,v1=<hex>``, one ``v1`` per
secret while a secret is being rotated, computed afresh for every attempt.

aiohttp itself is imported on first use (``_open``, ``deliver``): a worker process that sends no
webhook does not pay for it at start-up (about 0.1 s).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING

from satworks import clock, signatures
from satworks.errors import UnsafeWebhookUrl
from satworks.integrations.webhooks.guard import AddressPolicy, check_url
from satworks.integrations.webhooks.outcome import (
    DeliveryAttempt,
    Outcome,
    classify,
    retry_after_s,
    status_error,
)
from satworks.settings import Settings

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.abc import AbstractResolver

USER_AGENT = "satworks-webhooks/1"


def sign_all(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """``t=<timestamp>,v1=<sig with secrets[0]>,v1=<sig with secrets[1]>...``; one match is enough."""
    if not secrets:
        raise ValueError("a webhook needs at least one signing secret")
    parts = [signatures.sign(body, secret, timestamp) for secret in secrets]
    return ",".join([parts[0], *(p.split(",", 1)[1] for p in parts[1:])])


class WebhookSender:
    """Delivers to any number of endpoints; ``deliver`` never raises for what the receiver did."""

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 15.0,
        response_max_bytes: int = 4096,
        retry_after_max_s: float = 3600.0,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
    ) -> None:
        """``resolver``: the DNS under the guard (default: the system's); ``ssl_context``: to trust a
        private CA (default: the system's CAs); certificates are always checked against the URL's name."""
        self.policy = policy
        self.response_max_bytes = response_max_bytes
        self.retry_after_max_s = retry_after_max_s
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._resolver = resolver
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: AbstractResolver | None = None) -> WebhookSender:
        return cls(
            policy=AddressPolicy.of(settings.webhook_allowed_networks, settings.webhook_allowed_hosts),
            connect_timeout_s=settings.webhook_connect_timeout_s,
            timeout_s=settings.webhook_timeout_s,
            response_max_bytes=settings.webhook_response_max_bytes,
            retry_after_max_s=settings.webhook_retry_after_max_s,
            resolver=resolver,
        )

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            from satworks.integrations.webhooks.resolver import GuardedResolver

            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.policy, self._resolver), ssl=self._ssl, limit=self._max_connections
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s, sock_connect=self._connect_timeout_s),
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),  # one receiver's cookies never reach another
                trust_env=False,  # no proxy from the environment: it would resolve names unguarded
            )
        return self._session

    async def deliver(
        self, url: str, body: bytes, secrets: Sequence[str], *, headers: Mapping[str, str] | None = None
    ) -> DeliveryAttempt:
        """POST ``body`` (JSON) to ``url`` signed with ``secrets`` (newest first); one attempt, no redirects."""
        import aiohttp

        started = time.monotonic()
        try:
            target = check_url(url, self.policy)
        except UnsafeWebhookUrl as exc:
            return DeliveryAttempt(Outcome.FAILED, None, 0, error=f"refused: {exc.message}")
        request_headers = {
            **(headers or {}),
            "Content-Type": "application/json",
            signatures.HEADER: sign_all(body, secrets, clock.unix_s()),
        }
        try:
            async with self._open().post(target, data=body, headers=request_headers, allow_redirects=False) as answer:
                head = await self._head(answer)
                status, reason, wish = answer.status, answer.reason, answer.headers.get("Retry-After")
                retry_after = retry_after_s(wish, now=clock.utcnow(), cap_s=self.retry_after_max_s) if wish else None
        except UnsafeWebhookUrl as exc:  # raised by the resolver, after DNS
            return DeliveryAttempt(Outcome.FAILED, None, _ms(started), error=f"refused: {exc.message}")
        except aiohttp.InvalidURL as exc:  # e.g. a legacy numeric IPv4 form aiohttp will not dial
            return DeliveryAttempt(Outcome.FAILED, None, _ms(started), error=f"refused: invalid URL host ({exc})")
        except TimeoutError as exc:
            what = "connecting" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "waiting for the answer"
            return DeliveryAttempt(Outcome.RETRY, None, _ms(started), error=f"timed out {what}")
        except aiohttp.ClientError as exc:
            return DeliveryAttempt(Outcome.RETRY, None, _ms(started), error=_connection_error(exc))
        outcome = classify(status)
        return DeliveryAttempt(
            outcome,
            status,
            _ms(started),
            response_head=head.decode("utf-8", "replace"),
            error=status_error(status, reason),
            retry_after_s=retry_after if outcome is Outcome.RETRY else None,
        )

    async def _head(self, answer: aiohttp.ClientResponse) -> bytes:
        """The body's first ``response_max_bytes``; the answer stands even if its body then fails."""
        import aiohttp

        chunks: list[bytes] = []
        remaining = self.response_max_bytes
        # The status line and headers are the answer; the body is only kept for the record.
        with suppress(TimeoutError, aiohttp.ClientError):
            while remaining > 0:
                chunk = await answer.content.read(remaining)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        if not answer.content.at_eof():
            answer.close()  # drop the connection rather than drain a body we will not keep
        return b"".join(chunks)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _connection_error(exc: aiohttp.ClientError) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve the host: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate refused: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return f"connection failed: {type(exc).__name__}: {exc}"[:300]
