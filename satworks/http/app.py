"""``create_app(settings)``: the intake application with its resources opened in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from satworks.db.engine import async_engine
from satworks.http import context as ctx
from satworks.http.auth import Authenticator
from satworks.http.errors import errors_middleware
from satworks.http.intake import IntakeBatcher, requeue_stranded, requeue_stranded_payments
from satworks.http.middlewares import observe
from satworks.http.ratelimit import WindowLimiter
from satworks.http.routes import all_routes
from satworks.metrics.build import register_build_info
from satworks.metrics.http import HttpMetrics
from satworks.metrics.queues import QueueStats
from satworks.settings import Settings
from satworks.workers.broker import SatworksRedisBroker, build_broker

log = logging.getLogger(__name__)
STRANDED_EVERY_S = 30.0


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(middlewares=[observe, errors_middleware], client_max_size=settings.max_body_bytes)
    app[ctx.SETTINGS] = settings
    app[ctx.REGISTRY] = registry or CollectorRegistry()
    app[ctx.HTTP_METRICS] = HttpMetrics.create(app[ctx.REGISTRY])
    register_build_info(app[ctx.REGISTRY])
    for route in all_routes():
        app.router.add_route(route.method, route.path, route.handler)
    app.cleanup_ctx.append(_resources)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[ctx.SETTINGS]
    engine = async_engine(settings.database_url, pool_size=settings.db_pool_size)
    redis = Redis.from_url(settings.redis_url)
    broker = build_broker(settings)
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="satworks-intake")
    broker_redis = Redis.from_url(settings.effective_broker_url) if isinstance(broker, SatworksRedisBroker) else None
    metrics = app[ctx.HTTP_METRICS]

    def count_enqueued(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            metrics.enqueued.labels(row["type"], row["queue"].removeprefix(settings.queue_prefix)).inc()

    batcher = IntakeBatcher(
        engine,
        broker,
        executor,
        batch_max=settings.intake_batch_max,
        default_max_age_ms=settings.default_max_age_ms,
        on_enqueued=count_enqueued,
    )
    app[ctx.ENGINE], app[ctx.BROKER], app[ctx.EXECUTOR], app[ctx.BATCHER] = engine, broker, executor, batcher
    app[ctx.REDIS] = redis
    app[ctx.AUTH] = Authenticator(
        engine,
        WindowLimiter(redis, namespace="satworks:rl"),
        cache_ttl_s=settings.auth_cache_ttl_s,
        failures_per_minute=settings.auth_failures_per_minute,
        default_rate_limit=settings.default_rate_limit_per_minute,
        trusted_proxies=frozenset(settings.trusted_proxies),
    )
    app[ctx.QUEUE_STATS] = QueueStats(broker, broker_redis, executor, prefix=settings.queue_prefix)
    batcher.start()
    sweeper = asyncio.create_task(_sweep_stranded(app))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await batcher.stop()
        await redis.aclose()
        if broker_redis is not None:
            await broker_redis.aclose()
        await engine.dispose()
        executor.shutdown(wait=True)
        broker.close()


async def _sweep_stranded(app: web.Application) -> None:
    settings = app[ctx.SETTINGS]
    while True:
        await asyncio.sleep(STRANDED_EVERY_S)
        try:
            await requeue_stranded(
                app[ctx.ENGINE],
                app[ctx.BROKER],
                app[ctx.EXECUTOR],
                older_than_s=60,
                default_max_age_ms=settings.default_max_age_ms,
            )
            await requeue_stranded_payments(
                app[ctx.ENGINE],
                app[ctx.BROKER],
                app[ctx.EXECUTOR],
                older_than_s=60,
                prefix=app[ctx.SETTINGS].queue_prefix,
            )
        except Exception:  # the loop's boundary: a broker or database error must not end the sweep for good
            log.warning("stranded sweep failed; retrying later", extra={"action": "stranded_failed"}, exc_info=True)
