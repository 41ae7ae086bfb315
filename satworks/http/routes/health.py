"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from satworks.db import dead_letters as dead_letters_db
from satworks.db import payment_requests as requests_db
from satworks.db.engine import ping
from satworks.errors import DependencyUnavailable
from satworks.http import context as ctx
from satworks.http.requests import json_response
from satworks.http.route import Route
from satworks.http.schemas import Health
from satworks.jobs.base import QUEUES
from satworks.jobs.status import JobStatus
from satworks.metrics.http import PAYMENT_METHODS
from satworks.payments.status import PaymentStatus


async def health(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


async def ready(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await ping(request.app[ctx.ENGINE])
        checks["postgres"] = "ok"
    except DependencyUnavailable:
        checks["postgres"] = "unavailable"
    try:
        await request.app[ctx.REDIS].ping()
        checks["redis"] = "ok"
    except (RedisError, OSError):
        checks["redis"] = "unavailable"
    try:
        await request.app[ctx.QUEUE_STATS].ping()
        checks["broker"] = "ok"
    except DependencyUnavailable:
        checks["broker"] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return json_response(Health(status="ok" if ok else "unavailable", checks=checks), status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    gauge = request.app[ctx.HTTP_METRICS].queue_messages
    try:
        for queue, counts in (await request.app[ctx.QUEUE_STATS].depths()).items():
            for state, value in counts.items():
                gauge.labels(queue, state).set(value)
    except DependencyUnavailable:
        pass  # keep the last known depths; readiness reports the outage
    try:
        payments = await requests_db.counts_by_method_and_status(request.app[ctx.ENGINE])
        for method in PAYMENT_METHODS:
            for status in PaymentStatus:
                gauge = request.app[ctx.HTTP_METRICS].payment_requests.labels(method, status.value)
                gauge.set(payments.get((method, status.value), 0))
    except DependencyUnavailable:
        pass  # keep the last known counts; readiness reports the outage
    with contextlib.suppress(DependencyUnavailable):  # keep the last known counts; readiness reports it
        await _dead_letter_gauges(request)
    body = generate_latest(request.app[ctx.REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _dead_letter_gauges(request: web.Request) -> None:
    """Dead and failed jobs per queue: a requeue lowers them (the broker's dead-letter sets do not)."""
    metrics, prefix = request.app[ctx.HTTP_METRICS], request.app[ctx.SETTINGS].queue_prefix
    counts = await dead_letters_db.counts_by_queue(request.app[ctx.ENGINE])
    for queue in QUEUES:
        metrics.dead_letter_jobs.labels(queue).set(counts.get((prefix + queue, JobStatus.DEAD), 0))
        metrics.failed_jobs.labels(queue).set(counts.get((prefix + queue, JobStatus.FAILED), 0))


ROUTES = [
    Route("GET", "/health", health, "Liveness: the process answers", Health),
    Route("GET", "/ready", ready, "Readiness: Postgres, Redis and the broker answer", Health, errors=(503,)),
    Route("GET", "/metrics", metrics, "Prometheus metrics", None, content_type="text/plain"),
]
