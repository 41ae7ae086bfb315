"""A broker that loses every message (``FLUSHALL``, Redis restarted without persistence) loses no accepted job.

The whole path runs as processes: jobs accepted over HTTP, a worker pool, and a scheduler submitting
``platform.reconcile`` every 2 s. While some jobs run and hundreds wait, the broker loses its data:
either every key of this test's own queue prefix is deleted (the shared Redis is never flushed), or
a ``redis-server`` of the test's own, without persistence, is killed and started again. Every accepted job must end
``succeeded`` having been claimed exactly once (``attempts = 1``: a message replaced by the
reconciler, still held by the worker, could not run it a second time).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.http.app import create_app
from satworks.settings import Settings
from tests.scheduler_support import SchedulerProcess, fresh_database
from tests.support import WorkerProcess, db_dsn, eventually, free_port, wait_until

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(300)]

QUICK, SLOW = 300, 12
SCHEDULE = {"schedule_canary": "off", "schedule_reconcile": "interval:2"}


class PrivateRedis:
    """A ``redis-server`` of this test's own, without persistence, that can be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*argv, "--dir", str(self.directory)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            wait_until(lambda: _pings(client), timeout_s=20, what="the private redis-server")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (the restart test runs one of its own)", pytrace=False)
    server = PrivateRedis(tmp_path).start()
    yield server
    server.kill()


def counts(settings: Settings) -> dict[str, int]:
    with psycopg.connect(db_dsn(settings)) as conn:
        rows = conn.execute("SELECT status, count(*) FROM jobs WHERE type = 'canary' GROUP BY status").fetchall()
    return {status: count for status, count in rows}


def wipe(settings: Settings) -> int:
    """Delete every Redis key of this test's queue prefix: its queues, acks, delayed messages, epoch."""
    client = redis.Redis.from_url(settings.effective_broker_url)
    try:
        keys = list(client.scan_iter(f"satworks:{settings.queue_prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


async def test_every_accepted_job_succeeds_exactly_once_after_a_broker_wipe(
    base_settings: Settings, aiohttp_client: Any, tmp_path: Path
) -> None:
    """``FLUSHALL`` as far as this test can: every key of its own queue prefix deleted."""
    with fresh_database(base_settings, **SCHEDULE) as settings:
        await _lose_the_broker_while_jobs_wait(settings, aiohttp_client, tmp_path, lambda: wipe(settings) > 0)


async def test_every_accepted_job_succeeds_exactly_once_after_redis_restarts_without_persistence(
    base_settings: Settings, aiohttp_client: Any, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    def restart() -> bool:
        private_redis.kill()
        private_redis.start()
        return True

    with fresh_database(base_settings, redis_url=private_redis.url, **SCHEDULE) as settings:
        await _lose_the_broker_while_jobs_wait(settings, aiohttp_client, tmp_path, restart)


async def _lose_the_broker_while_jobs_wait(
    settings: Settings, aiohttp_client: Any, tmp_path: Path, lose: Callable[[], bool]
) -> None:
    engine = sync_engine(settings.database_url, pool_size=1)
    with engine.begin() as conn:
        key = apps.create(conn, f"wipe-{uuid.uuid4().hex[:8]}", admin=False, rate_limit_per_minute=None)
    engine.dispose()
    headers = {"Authorization": f"Bearer {key}"}
    client = await aiohttp_client(create_app(settings))
    worker = WorkerProcess(settings, threads=4).start()
    scheduler = SchedulerProcess(settings, "a", tmp_path).start()
    try:
        # The reconciler ran once before the wipe: the broker holds its epoch.
        await eventually(
            lambda: asyncio.to_thread(_reconcile_runs, settings), timeout_s=60, what="a first reconciler run"
        )

        async def submit(payload: dict[str, Any]) -> str:
            response = await client.post("/v1/jobs", json={"type": "canary", "payload": payload}, headers=headers)
            assert response.status == 202, await response.text()
            return str((await response.json())["id"])

        ids = await asyncio.gather(*(submit({"sleep_ms": 1500}) for _ in range(SLOW)))
        ids += await asyncio.gather(*(submit({"sleep_ms": 50}) for _ in range(QUICK)))

        def running() -> dict[str, int] | None:
            seen = counts(settings)
            return seen if seen.get("running", 0) >= 2 else None

        await eventually(lambda: asyncio.to_thread(running), timeout_s=60, what="jobs running")
        before = counts(settings)
        assert lose()
        print(f"\nwhen the broker lost its data: {before}")
        assert before.get("queued", 0) >= 100  # hundreds waiting, some running: what the wipe is about

        def all_done() -> dict[str, int] | None:
            seen = counts(settings)
            return seen if seen.get("succeeded", 0) == len(ids) else None

        await eventually(lambda: asyncio.to_thread(all_done), timeout_s=180, what="every job to succeed")
    finally:
        scheduler.kill()
        worker.stop()

    with psycopg.connect(db_dsn(settings)) as conn:
        attempts = dict(
            conn.execute("SELECT attempts, count(*) FROM jobs WHERE type = 'canary' GROUP BY attempts").fetchall()
        )
        resent = conn.execute("SELECT count(*) FROM jobs WHERE type = 'canary' AND generation > 0").fetchone()
        wiped_runs = conn.execute(
            "SELECT count(*) FROM jobs WHERE type = 'platform.reconcile' AND (result->>'broker_wiped')::boolean"
        ).fetchone()
    assert attempts == {1: len(ids)}, attempts  # each job claimed, so run, exactly once
    # Jobs a worker had prefetched before the wipe may have run with their first message; the rest
    # ran with the reconciler's.
    assert resent is not None and resent[0] > 0
    assert wiped_runs is not None and wiped_runs[0] >= 1


def _reconcile_runs(settings: Settings) -> int:
    with psycopg.connect(db_dsn(settings)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM jobs WHERE type = 'platform.reconcile' AND status = 'succeeded'"
        ).fetchone()
    return int(row[0]) if row else 0
