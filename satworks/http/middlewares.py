"""Request id, metrics and access logging around every request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from satworks.http import context as ctx
from satworks.logs import request_id_var

log = logging.getLogger("satworks.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
    request_id_var.set(request_id)
    started = time.perf_counter()
    response = await handler(request)
    elapsed = time.perf_counter() - started
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[ctx.HTTP_METRICS]
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.latency.labels(route, request.method).observe(elapsed)
    response.headers["X-Request-Id"] = request_id
    if response.status >= 500 or log.isEnabledFor(logging.DEBUG):
        log.info(
            "%s %s -> %s",
            request.method,
            route,
            response.status,
            extra={"action": "http_request", "status": response.status, "ms": round(elapsed * 1000, 2)},
        )
    return response
