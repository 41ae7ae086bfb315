"""The OpenAPI document and the admin statistics."""

from __future__ import annotations

from collections import defaultdict

from aiohttp import web

from satworks.db import jobs as jobs_db
from satworks.http import context as ctx
from satworks.http.requests import json_response
from satworks.http.route import Route
from satworks.http.schemas import QueueDepth, Stats


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[ctx.OPENAPI])


async def stats(request: web.Request) -> web.Response:
    await request.app[ctx.AUTH].authenticate(request, "admin")
    depths = await request.app[ctx.QUEUE_STATS].depths()
    rows = await jobs_db.counts_by_status_and_type(request.app[ctx.ENGINE])
    by_status: dict[str, int] = defaultdict(int)
    by_type: dict[str, dict[str, int]] = defaultdict(dict)
    for status, job_type, count in rows:
        by_status[status] += count
        by_type[job_type][status] = count
    queues = {name: QueueDepth(**counts) for name, counts in depths.items()}
    return json_response(Stats(queues=queues, jobs_by_status=dict(by_status), jobs_by_type=dict(by_type)))


ROUTES = [
    Route("GET", "/v1/openapi.json", openapi, "This OpenAPI document", None),
    Route(
        "GET",
        "/v1/stats",
        stats,
        "Queue depths and job counts (admin)",
        Stats,
        scope="admin",
        errors=(401, 403, 429, 503),
    ),
]
