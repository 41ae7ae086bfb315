"""Real Postgres, Redis and Dramatiq workers for every test process (one per pytest-xdist worker).

Each xdist worker gets its own database (``satworks_test_<id>``, created and dropped here) and its own
queue prefix, so workers never see each other's jobs. A missing Postgres or Redis fails the run; RabbitMQ
is optional outside CI (its tests skip when it is not reachable, and fail under ``CI=true``: see
``tests.support.require_service``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from aiohttp.test_utils import TestClient
from psycopg import sql

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.db.migrate import upgrade
from satworks.http.app import create_app
from satworks.settings import Settings
from tests.support import WorkerProcess, free_port

PG_URL = os.environ.get("SATWORKS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SATWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _ident(worker_id: str, run_id: str) -> str:
    """Unique per test run and xdist worker, so concurrent runs on one machine never share data."""
    return run_id[:6] + (worker_id.replace("gw", "w") if worker_id != "master" else "m")


@pytest.fixture
def redis_namespaces() -> Iterator[Callable[[], str]]:
    """Makes key namespaces of their own on the tests' Redis, for brokers a test builds itself; their
    keys go at the end."""
    made: list[str] = []

    def make() -> str:
        made.append(f"ns{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    client = redis.Redis.from_url(REDIS_URL)
    for ns in made:
        keys = list(client.scan_iter(f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def redis_namespace(redis_namespaces: Callable[[], str]) -> str:
    """One such namespace."""
    return redis_namespaces()


@pytest.fixture(scope="session")
def base_settings(worker_id: str, testrun_uid: str) -> Iterator[Settings]:
    ident = _ident(worker_id, testrun_uid)
    db_name = f"satworks_test_{ident}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    server = PG_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    settings = Settings(
        database_url=f"{server}/{db_name}",
        db_pool_size=4,
        redis_url=REDIS_URL,
        queue_prefix=f"t{ident}_",
        canary_chaos=True,
        heartbeat_timeout_ms=3_000,
        reaper_interval_ms=500,
        worker_metrics_port=free_port(),
        trusted_proxies=["127.0.0.1"],
        auth_failures_per_minute=5,
        log_level="WARNING",
    )
    upgrade(settings.database_url)
    yield settings
    _purge_queues(settings)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))


@pytest.fixture(scope="session")
def worker(base_settings: Settings) -> Iterator[WorkerProcess]:
    """One worker pool (all three queues) per test process, shared by the tests that need jobs to run."""
    process = WorkerProcess(base_settings).start()
    yield process
    process.stop()


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(settings))


@pytest.fixture
def make_key(base_settings: Settings) -> Iterator[Any]:
    engine = sync_engine(base_settings.database_url, pool_size=1)

    def make(*, admin: bool = False, rate_limit_per_minute: int | None = None) -> str:
        with engine.begin() as conn:
            return apps.create(
                conn, f"app-{uuid.uuid4().hex[:12]}", admin=admin, rate_limit_per_minute=rate_limit_per_minute
            )

    yield make
    engine.dispose()


@pytest.fixture
def key(make_key: Any) -> str:
    return str(make_key())


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    """Headers of a fresh app with the ``jobs`` scope, from its own (fake, proxied) client address."""
    return {"Authorization": f"Bearer {key}", "X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.0.1"}


def _purge_queues(settings: Settings) -> None:
    """Drop what this run left in its own queues (our prefix, our DB index)."""
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(f"satworks:{settings.queue_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
