"""``create_app(settings)``: the intake application with its resources opened in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from redis.asyncio import Redis

from satworks.broker.stats import QueueStats
from satworks.db.jobs import NewJob
from satworks.http import context as ctx
from satworks.http.auth import Authenticator
from satworks.http.clients import ClientAddress
from satworks.http.docs import add_docs
from satworks.http.errors import errors_middleware
from satworks.http.failures import FailedAttempts
from satworks.http.middlewares import observe
from satworks.http.openapi import openapi_document
from satworks.http.ratelimit import WindowLimiter
from satworks.http.routes import all_routes
from satworks.intake.recovery import recover_forever
from satworks.intake.resources import open_intake
from satworks.metrics.build import register_build_info
from satworks.metrics.http import HttpMetrics
from satworks.settings import Settings


def create_app(
    settings: Settings, *, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None
) -> web.Application:
    """``multiprocess_dir``: one of several serving processes (``satworks.http.serve``); its metrics are
    written there and ``/metrics`` reports every process's."""
    app = web.Application(middlewares=[observe, errors_middleware], client_max_size=settings.max_body_bytes)
    app[ctx.SETTINGS] = settings
    app[ctx.REGISTRY] = registry or CollectorRegistry()
    if multiprocess_dir is None:
        app[ctx.HTTP_METRICS] = HttpMetrics.create(app[ctx.REGISTRY])
    else:
        app[ctx.HTTP_METRICS] = HttpMetrics.create(CollectorRegistry())  # values go to the directory
        MultiProcessCollector(app[ctx.REGISTRY], path=multiprocess_dir)  # type: ignore[no-untyped-call]
    register_build_info(app[ctx.REGISTRY])
    routes = all_routes()
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app[ctx.OPENAPI] = openapi_document(routes)
    add_docs(app)
    app.cleanup_ctx.append(_resources)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[ctx.SETTINGS]
    metrics = app[ctx.HTTP_METRICS]

    def count_enqueued(jobs: Sequence[NewJob]) -> None:
        for job in jobs:
            metrics.enqueued_child(job.type, job.queue.removeprefix(settings.queue_prefix)).inc()

    metrics.processes.set(1)
    async with open_intake(settings, on_enqueued=count_enqueued) as intake:
        redis = Redis.from_url(settings.redis_url)
        app[ctx.INTAKE], app[ctx.ENGINE], app[ctx.REDIS] = intake, intake.engine, redis
        app[ctx.AUTH] = Authenticator(
            intake.engine,
            WindowLimiter(redis, namespace="satworks:rl"),
            FailedAttempts(
                redis, namespace=f"satworks:{settings.queue_prefix}authfail", limit=settings.auth_failures_per_minute
            ),
            cache_ttl_s=settings.auth_cache_ttl_s,
            default_rate_limit=settings.default_rate_limit_per_minute,
            client_address=ClientAddress(settings.trusted_proxies),
        )
        app[ctx.QUEUE_STATS] = QueueStats(intake.client, prefix=settings.queue_prefix)
        recovery = asyncio.create_task(recover_forever(intake.engine, intake.client, settings))
        try:
            yield
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
            await redis.aclose()
