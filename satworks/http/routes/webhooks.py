"""Webhooks from nodes and payment watchers. They only wake checks up: amounts in them are never used.

- ``/v1/webhooks/bitcoind/walletnotify`` and ``/blocknotify``: for ``-walletnotify='curl -X POST
  http://host/v1/webhooks/bitcoind/walletnotify?txid=%s -H "X-Satworks-Node-Token: …"'``; the id comes
  in the query (``txid`` / ``blockhash``), a JSON body or a plain-text body.
- ``/v1/webhooks/payments``: a signed event (see ``satworks.signatures``) naming a payment id.

Wrong tokens and bad signatures are audited (``auth_failed``) and counted per client address like
failed API keys; past ``SATWORKS_AUTH_FAILURES_PER_MINUTE`` that address gets 429 for the rest of the
minute, even with the right token (a node token may be guessable; nodes' notifications only wake checks up).
"""

from __future__ import annotations

import hmac
import re
import uuid

from aiohttp import web
from pydantic import BaseModel

from satworks import clock
from satworks.errors import NotFound, RateLimited, Unauthorized, ValidationFailed
from satworks.http import context as ctx
from satworks.http.requests import json_response, parse_json, raw_body, validate
from satworks.http.route import Route
from satworks.http.schemas import Accepted, WatcherEvent
from satworks.signatures import HEADER, SignatureError, verify

HEX64 = re.compile(r"[0-9a-fA-F]{64}")
NODE_TOKEN_HEADER = "X-Satworks-Node-Token"


async def walletnotify(request: web.Request) -> web.Response:
    txid = await _node_notification(request, "txid")
    await request.app[ctx.INTAKE].payments.recheck_tx(txid.lower())
    return json_response(Accepted(), status=202)


async def blocknotify(request: web.Request) -> web.Response:
    await _node_notification(request, "blockhash")
    await request.app[ctx.INTAKE].payments.sweep()
    await request.app[ctx.INTAKE].draws.wake()
    return json_response(Accepted(), status=202)


async def payment_event(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    if settings.payment_webhook_secret is None:
        raise NotFound("payment webhooks are not configured")
    client = _refuse_blocked(request, "watcher")
    body = await raw_body(request, max_bytes=settings.max_body_bytes)
    try:
        verify(
            request.headers.get(HEADER, ""),
            body,
            settings.payment_webhook_secret,
            now=clock.unix_s(),
            tolerance_s=settings.payment_webhook_tolerance_s,
        )
    except SignatureError as exc:
        await request.app[ctx.AUTH].refuse(request, "bad webhook signature", client)  # 429 past the limit
        raise Unauthorized(f"bad webhook signature: {exc}") from exc
    event = validate(WatcherEvent, parse_json(body, max_depth=settings.max_json_depth), what="payment event")
    try:
        payment_id = uuid.UUID(str(event.data.get("payment_id")))
    except ValueError as exc:
        raise ValidationFailed(
            "data.payment_id must be a payment id", details=[{"loc": ["data", "payment_id"]}]
        ) from exc
    await request.app[ctx.INTAKE].payments.watcher_event(payment_id, event.id)
    return json_response(Accepted(), status=202)


async def _node_notification(request: web.Request, name: str) -> str:
    settings = request.app[ctx.SETTINGS]
    expected = settings.bitcoind_webhook_token
    if expected is None:
        raise NotFound("node webhooks are not configured")
    client = _refuse_blocked(request, "node")
    given = request.headers.get(NODE_TOKEN_HEADER) or request.query.get("token", "")
    # A header's bytes that are not UTF-8 arrive as surrogates: compared as the bytes they were.
    if not hmac.compare_digest(given.encode(errors="surrogateescape"), expected.encode()):
        await request.app[ctx.AUTH].refuse(request, "missing or invalid node token", client)  # 429 past the limit
        raise Unauthorized("missing or invalid node token")
    value = request.query.get(name)
    if value is None and request.can_read_body:
        body = await raw_body(request, max_bytes=4096)
        if request.content_type == "application/json":
            document = parse_json(body, max_depth=settings.max_json_depth)
            value = str(document.get(name, "")) if isinstance(document, dict) else ""
        else:
            value = body.decode(errors="replace").strip()
    if not value or not HEX64.fullmatch(value):
        raise ValidationFailed(f"{name} must be 64 hex characters", details=[{"loc": [name]}])
    return value


def _refuse_blocked(request: web.Request, webhook: str) -> str:
    """The failed-attempt subject of this request's client; 429 while it is blocked."""
    auth = request.app[ctx.AUTH]
    client = f"{webhook}:{auth.client_address(request)}"
    left = auth.failures.blocked(client)
    if left is not None:
        raise RateLimited("too many failed authentication attempts", retry_after_s=left)
    return client


class _NodeNotification(BaseModel):
    """Body of a node notification (also accepted as a query parameter or plain text)."""

    txid: str | None = None
    blockhash: str | None = None


ROUTES = [
    Route(
        "POST",
        "/v1/webhooks/bitcoind/walletnotify",
        walletnotify,
        "bitcoind -walletnotify: re-check a tx",
        Accepted,
        status=202,
        body=_NodeNotification,
        errors=(400, 401, 404, 408, 413, 422, 429, 503),
    ),
    Route(
        "POST",
        "/v1/webhooks/bitcoind/blocknotify",
        blocknotify,
        "bitcoind -blocknotify: sweep payments, wake draws up",
        Accepted,
        status=202,
        body=_NodeNotification,
        errors=(400, 401, 404, 408, 413, 422, 429, 503),
    ),
    Route(
        "POST",
        "/v1/webhooks/payments",
        payment_event,
        "A signed payment watcher event: re-check it",
        Accepted,
        status=202,
        body=WatcherEvent,
        errors=(400, 401, 404, 408, 409, 413, 422, 429, 503),
    ),
]
