"""Request id, metrics and access logging around every request."""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from satworks import ids
from satworks.http import context as ctx
from satworks.logs import request_id_var
from satworks.metrics.http import HttpMetrics

log = logging.getLogger("satworks.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The labelled children of the request metrics, per metrics object: ``labels()`` takes a lock and
# builds a key on every call, while the set of (route, method, status) seen is small.
_Children = dict[tuple[str, str, int], tuple[Any, Any]]
_CHILDREN: weakref.WeakKeyDictionary[HttpMetrics, _Children] = weakref.WeakKeyDictionary()


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
    requests, latency = _children(request.app[ctx.HTTP_METRICS], route, request.method, status)
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


def _children(metrics: HttpMetrics, route: str, method: str, status: int) -> tuple[Any, Any]:
    children = _CHILDREN.get(metrics)
    if children is None:
        children = _CHILDREN[metrics] = {}
    key = (route, method, status)
    found = children.get(key)
    if found is None:
        found = children[key] = (
            metrics.requests.labels(route, method, str(status)),
            metrics.latency.labels(route, method),
        )
    return found
