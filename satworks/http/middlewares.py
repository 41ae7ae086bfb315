"""Request id, metrics and access logging around every request."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from satworks import ids
from satworks.http import context as ctx
from satworks.logs import request_id_var

log = logging.getLogger("satworks.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id")
    request_id = incoming if incoming is not None and _VALID_ID.match(incoming) else ids.token_hex16()
    request_id_var.set(request_id)
    started = time.perf_counter()
    protocol = request.protocol  # satworks web's: it counts heads that time out between requests
    if hasattr(protocol, "request_started"):
        protocol.request_started()
    try:
        response = await handler(request)
    finally:
        if hasattr(protocol, "request_finished"):
            protocol.request_finished()
    elapsed = time.perf_counter() - started
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = response.status
    requests, latency = request.app[ctx.HTTP_METRICS].request_children(route, request.method, status)
    requests.inc()
    latency.observe(elapsed)
    response.headers["X-Request-Id"] = request_id
    if status >= 500 or log.isEnabledFor(logging.DEBUG):
        log.info(
            "%s %s -> %s",
            request.method,
            route,
            status,
            extra={"action": "http_request", "status": status, "ms": round(elapsed * 1000, 2)},
        )
    return response
