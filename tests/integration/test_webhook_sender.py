"""The webhook sender against a real local HTTP receiver: signatures, outcomes, the SSRF guard."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from satworks import clock, signatures
from satworks.errors import WebhookRejected, WebhookUndelivered
from satworks.integrations.webhooks.guard import AddressPolicy
from satworks.integrations.webhooks.outcome import Outcome
from satworks.integrations.webhooks.sender import WebhookSender
from satworks.webhooks.events import WebhookEvent
from tests.support import ROOT, documented_verify, free_port

SECRET = "whsec_" + "k" * 32
LOOPBACK = AddressPolicy.of(["127.0.0.0/8", "::1/128"])


@dataclass
class Receiver:
    """What the receiver saw, per path."""

    hits: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    seen = Receiver()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.hits.setdefault(request.path, []).append((dict(request.headers), body))
        path = request.path
        if path == "/ok":
            return web.Response(text="thanks")
        if path == "/created":
            return web.Response(status=201)
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            headers = {"Retry-After": request.query["retry_after"]} if "retry_after" in request.query else {}
            return web.Response(status=status, text=f"answer {status}", headers=headers)
        if path == "/redirect":
            raise web.HTTPFound(request.query.get("to", seen.url("/ok")))
        if path == "/hang":
            await seen.release.wait()
            return web.Response(text="too late")
        if path == "/big":
            return web.Response(body=b"x" * 1_000_000)
        if path == "/stalled-body":  # the status and headers, then a body that never ends
            answer = web.StreamResponse(status=200)
            await answer.prepare(request)
            await answer.write(b"partial")
            await seen.release.wait()
            return answer
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    seen.port = server.port or 0
    yield seen
    seen.release.set()
    await server.close()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(policy=LOOPBACK, timeout_s=2.0, response_max_bytes=64) as running:
        yield running


@pytest.fixture
async def guarded() -> AsyncIterator[WebhookSender]:
    """The production default: no private address allowed."""
    async with WebhookSender(policy=AddressPolicy(), timeout_s=2.0) as running:
        yield running


def _event() -> WebhookEvent:
    data = {"payment_id": "p-1", "status": "settled", "exception_status": None, "amount_sat": 125_000}
    return WebhookEvent("evt_42", "payment.settled", clock.utcnow(), {**data, "received_sat": 125_000})


async def test_signature_verifies_with_the_documented_recipe(receiver: Receiver, sender: WebhookSender) -> None:
    event = _event()
    attempt = await sender.deliver(receiver.url("/ok"), event.body(), [SECRET], headers=event.headers())
    assert attempt.outcome is Outcome.DELIVERED and attempt.status_code == 200 and attempt.response_head == "thanks"
    [(headers, body)] = receiver.hits["/ok"]
    verify = documented_verify()
    assert verify(headers["X-Satworks-Signature"], body, SECRET)
    assert not verify(headers["X-Satworks-Signature"], body, "whsec_wrong")
    assert not verify(headers["X-Satworks-Signature"], body.replace(b"125000", b"925000"), SECRET)
    # The intake's own verifier agrees, and the body is the event envelope.
    signatures.verify(headers["X-Satworks-Signature"], body, SECRET, now=clock.unix_s(), tolerance_s=300)
    assert body == event.body() and headers["Content-Type"] == "application/json"
    assert headers["X-Satworks-Event-Id"] == "evt_42"


def test_documented_sample_request_verifies_with_its_stated_secret() -> None:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    header = re.search(r"X-Satworks-Signature: (t=\d+,v1=[0-9a-f]{64})", text)
    body = re.search(r"\n(\{\"id\":\"evt_1842\".*\})\n", text)
    assert header and body
    expected = signatures.sign(body.group(1).encode(), "whsec_example_secret", int(header.group(1)[2:12]))
    assert header.group(1) == expected


async def test_every_secret_of_a_rotation_signs_the_request(receiver: Receiver, sender: WebhookSender) -> None:
    new, old = "whsec_new_" + "n" * 24, "whsec_old_" + "o" * 24
    await sender.deliver(receiver.url("/ok"), b"{}", [new, old])
    [(headers, body)] = receiver.hits["/ok"]
    verify = documented_verify()
    assert verify(headers["X-Satworks-Signature"], body, new) and verify(headers["X-Satworks-Signature"], body, old)
    assert headers["X-Satworks-Signature"].count("v1=") == 2


@pytest.mark.parametrize(
    ("path", "outcome", "status"),
    [
        ("/created", Outcome.DELIVERED, 201),
        ("/status/500", Outcome.RETRY, 500),
        ("/status/503", Outcome.RETRY, 503),
        ("/status/408", Outcome.RETRY, 408),
        ("/status/429", Outcome.RETRY, 429),
        ("/status/404", Outcome.FAILED, 404),
        ("/status/410", Outcome.FAILED, 410),
        ("/redirect", Outcome.FAILED, 302),
    ],
)
async def test_answers_are_classified(
    receiver: Receiver, sender: WebhookSender, path: str, outcome: Outcome, status: int
) -> None:
    attempt = await sender.deliver(receiver.url(path), b"{}", [SECRET])
    assert (attempt.outcome, attempt.status_code) == (outcome, status)
    assert attempt.latency_ms >= 0
    if outcome is Outcome.DELIVERED:
        attempt.raise_for_outcome()
        assert attempt.error is None
    elif outcome is Outcome.RETRY:
        with pytest.raises(WebhookUndelivered):
            attempt.raise_for_outcome()
        assert attempt.response_head == f"answer {status}"
    else:
        with pytest.raises(WebhookRejected):
            attempt.raise_for_outcome()
    assert "/ok" not in receiver.hits  # a redirect is never followed


async def test_retry_after_is_honoured_in_seconds_or_as_a_date_and_capped(
    receiver: Receiver, sender: WebhookSender
) -> None:
    seconds = await sender.deliver(receiver.url("/status/429?retry_after=120"), b"{}", [SECRET])
    assert seconds.outcome is Outcome.RETRY and seconds.retry_after_s == 120
    without = await sender.deliver(receiver.url("/status/503"), b"{}", [SECRET])
    assert without.outcome is Outcome.RETRY and without.retry_after_s is None
    when = format_datetime(datetime.now(tz=UTC) + timedelta(seconds=600), usegmt=True)
    dated = await sender.deliver(
        receiver.url(f"/status/429?retry_after={when.replace(' ', '%20').replace(',', '%2C')}"), b"{}", [SECRET]
    )
    assert dated.retry_after_s is not None and 590 <= dated.retry_after_s <= 600
    capped = await sender.deliver(receiver.url("/status/429?retry_after=999999"), b"{}", [SECRET])
    assert capped.retry_after_s == 3600
    with pytest.raises(WebhookUndelivered) as raised:
        capped.raise_for_outcome()
    assert raised.value.retry_after_s == 3600 and raised.value.status_code == 429


async def test_a_receiver_slower_than_the_timeout_is_retried(receiver: Receiver) -> None:
    async with WebhookSender(policy=LOOPBACK, timeout_s=0.3) as quick:
        attempt = await quick.deliver(receiver.url("/hang"), b"{}", [SECRET])
    assert attempt.outcome is Outcome.RETRY and attempt.status_code is None
    assert attempt.error == "timed out waiting for the answer"


async def test_an_answer_whose_body_stalls_still_counts_by_its_status(receiver: Receiver) -> None:
    async with WebhookSender(policy=LOOPBACK, timeout_s=0.5) as quick:
        attempt = await quick.deliver(receiver.url("/stalled-body"), b"{}", [SECRET])
    assert attempt.outcome is Outcome.DELIVERED and attempt.status_code == 200
    assert attempt.response_head == "partial"


async def test_refused_connection_is_retried(sender: WebhookSender) -> None:
    attempt = await sender.deliver(f"http://127.0.0.1:{free_port()}/hook", b"{}", [SECRET])
    assert attempt.outcome is Outcome.RETRY and attempt.status_code is None
    assert attempt.error is not None and attempt.error.startswith("cannot connect")


async def test_response_body_is_read_only_up_to_the_cap(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.deliver(receiver.url("/big"), b"{}", [SECRET])
    assert attempt.outcome is Outcome.DELIVERED and attempt.response_head == "x" * 64
    again = await sender.deliver(receiver.url("/ok"), b"{}", [SECRET])  # the pool is still usable
    assert again.outcome is Outcome.DELIVERED


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/ok",
        "http://127.8.9.10:{port}/ok",
        "http://[::1]:{port}/ok",
        "http://[::ffff:127.0.0.1]:{port}/ok",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0:{port}/ok",
        "http://localhost:{port}/ok",
        "http://2130706433:{port}/ok",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http:///no-host",
    ],
)
async def test_ssrf_guard_refuses_non_public_targets_without_connecting(
    receiver: Receiver, guarded: WebhookSender, url: str
) -> None:
    attempt = await guarded.deliver(url.format(port=receiver.port), b"{}", [SECRET])
    assert attempt.outcome is Outcome.FAILED and attempt.status_code is None
    assert attempt.error is not None and attempt.error.startswith("refused")
    assert receiver.hits == {}


class FixedResolver(AbstractResolver):
    """A DNS of our own: each name answers the given addresses."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.answers[host]
        ]

    async def close(self) -> None:
        return None


async def test_a_name_resolving_to_loopback_is_refused_after_dns(receiver: Receiver) -> None:
    dns = FixedResolver({"evil.example": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "10.1.2.3"]})
    async with WebhookSender(policy=AddressPolicy(), resolver=dns) as sender:
        evil = await sender.deliver(receiver.url("/ok", host="evil.example"), b"{}", [SECRET])
        mixed = await sender.deliver(receiver.url("/ok", host="mixed.example"), b"{}", [SECRET])
    assert evil.outcome is Outcome.FAILED and "evil.example resolves to" in (evil.error or "")
    assert "loopback" in (evil.error or "")
    assert mixed.outcome is Outcome.FAILED and "10.1.2.3" in (mixed.error or "")
    assert dns.asked == ["evil.example", "mixed.example"] and receiver.hits == {}


async def test_an_allowed_host_is_reached_at_the_checked_address_with_its_own_host_header(receiver: Receiver) -> None:
    dns = FixedResolver({"hooks.internal.example": ["127.0.0.1"]})
    policy = AddressPolicy.of(hosts=["hooks.internal.example"])
    async with WebhookSender(policy=policy, resolver=dns) as sender:
        attempt = await sender.deliver(receiver.url("/ok", host="hooks.internal.example"), b"{}", [SECRET])
    assert attempt.outcome is Outcome.DELIVERED
    [(headers, _)] = receiver.hits["/ok"]
    assert headers["Host"] == f"hooks.internal.example:{receiver.port}"


async def test_a_redirect_to_loopback_is_not_followed(receiver: Receiver) -> None:
    dns = FixedResolver({"public.example": ["127.0.0.1"]})
    async with WebhookSender(policy=AddressPolicy.of(hosts=["public.example"]), resolver=dns) as sender:
        attempt = await sender.deliver(
            receiver.url(f"/redirect?to=http://127.0.0.1:{receiver.port}/ok", host="public.example"), b"{}", [SECRET]
        )
    assert attempt.outcome is Outcome.FAILED and attempt.status_code == 302
    assert "redirects are not followed" in (attempt.error or "")
    assert "/ok" not in receiver.hits


async def test_the_allow_list_lets_loopback_through(receiver: Receiver) -> None:
    async with WebhookSender(policy=LOOPBACK) as allowed:  # the quick start's setting
        by_address = await allowed.deliver(receiver.url("/ok"), b"{}", [SECRET])
        by_name = await allowed.deliver(receiver.url("/ok", host="localhost"), b"{}", [SECRET])
    assert by_address.outcome is Outcome.DELIVERED and by_name.outcome is Outcome.DELIVERED
    assert len(receiver.hits["/ok"]) == 2


@pytest.fixture
async def https_receiver() -> AsyncIterator[tuple[Receiver, trustme.CA]]:
    """The same receiver's app over TLS, with a certificate for hooks.internal.example only."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.internal.example").configure_cert(server_context)
    seen = Receiver()

    async def handle(request: web.Request) -> web.Response:
        seen.hits.setdefault(request.path, []).append((dict(request.headers), await request.read()))
        return web.Response(text=f"tls sni ok for {request.host}")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    seen.port = runner.addresses[0][1]
    yield seen, ca
    await runner.cleanup()


async def test_https_to_a_pinned_address_checks_the_certificate_against_the_url_name(
    https_receiver: tuple[Receiver, trustme.CA],
) -> None:
    seen, ca = https_receiver
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    dns = FixedResolver({"hooks.internal.example": ["127.0.0.1"], "other.internal.example": ["127.0.0.1"]})
    policy = AddressPolicy.of(hosts=["hooks.internal.example", "other.internal.example"])
    async with WebhookSender(policy=policy, resolver=dns, ssl_context=client_context) as sender:
        good = await sender.deliver(f"https://hooks.internal.example:{seen.port}/hook", b"{}", [SECRET])
        wrong_name = await sender.deliver(f"https://other.internal.example:{seen.port}/hook", b"{}", [SECRET])
    assert good.outcome is Outcome.DELIVERED and good.response_head.startswith("tls sni ok for hooks.internal.example")
    assert wrong_name.outcome is Outcome.RETRY and (wrong_name.error or "").startswith("TLS certificate refused")
    assert len(seen.hits["/hook"]) == 1
