"""Dead-letter requeues beside job submission: the cost of giving N dead jobs a new run, compared in
one run with submitting N new jobs through the same intake (both: one transaction, one broker call).

Printed: seconds and microseconds per job for the baseline (N concurrent ``JobIntake.submit``), the
bulk dry-run count, the first listing page, one bulk requeue of N, and single requeues one after the
other, with ratios to the baseline. No worker runs: the messages stay in the queues. Usage:

    .venv/bin/python bench/dead_letters.py [--jobs 1000] [--singles 200]

Uses its own database (``satworks_bench_deadletters_<pid>``, dropped at the end) and its own queue
prefix in Redis DB 14 (only those keys are deleted at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import redis

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PG_SERVER, REDIS_URL, recreate_database
from satworks.db import apps
from satworks.db import dead_letters as dead_letters_db
from satworks.db.dead_letters import DeadLetterFilter
from satworks.db.engine import sync_engine
from satworks.db.migrate import upgrade
from satworks.intake.resources import open_intake
from satworks.jobs.request import JobIn
from satworks.settings import Settings

DB = f"satworks_bench_deadletters_{os.getpid()}"
PREFIX = f"benchdl{os.getpid()}_"


def kill_all(settings: Settings) -> None:
    """Every job of the run becomes a dead letter, as if its retries had run out."""
    engine = sync_engine(settings.database_url, pool_size=1)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE jobs SET status = 'dead', attempts = 1, error_type = 'ChaosRetry',"
            " error_message = 'bench', finished_at = now()"
        )
    engine.dispose()


async def measure(settings: Settings, app_id: uuid.UUID, jobs: int, singles: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with open_intake(settings) as intake:
        spec = JobIn.model_validate({"type": "canary"})
        started = time.perf_counter()
        submitted = await asyncio.gather(*(intake.jobs.submit(app_id, spec, None) for _ in range(jobs)))
        figures["submit"] = time.perf_counter() - started
        kill_all(settings)

        which = DeadLetterFilter(job_type="canary")
        started = time.perf_counter()
        assert await dead_letters_db.count(intake.engine, which) == jobs
        figures["count"] = time.perf_counter() - started
        started = time.perf_counter()
        page = await dead_letters_db.listing(intake.engine, which, before_seq=None, limit=50)
        figures["list"] = time.perf_counter() - started
        assert len(page.items) == 50

        started = time.perf_counter()
        moved = await intake.dead_letters.requeue_matching(which, limit=jobs, actor="bench", client_address=None)
        figures["bulk"] = time.perf_counter() - started
        assert len(moved) == jobs

        kill_all(settings)
        started = time.perf_counter()
        for job, _ in submitted[:singles]:
            await intake.dead_letters.requeue(job.id, actor="bench", client_address=None)
        figures["singles"] = time.perf_counter() - started
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=200)
    args = parser.parse_args()
    settings = Settings(database_url=f"{PG_SERVER}/{DB}", redis_url=REDIS_URL, queue_prefix=PREFIX, db_pool_size=4)
    recreate_database(DB, create=True)
    try:
        upgrade(settings.database_url)
        engine = sync_engine(settings.database_url, pool_size=1)
        with engine.begin() as conn:
            apps.create(conn, "bench", admin=True, rate_limit_per_minute=None)
        engine.dispose()
        app_id = asyncio.run(_app_id(settings))
        f = asyncio.run(measure(settings, app_id, args.jobs, args.singles))
    finally:
        recreate_database(DB)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"satworks:{PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    n, s = args.jobs, args.singles
    print(f"baseline: submit {n} jobs concurrently      {f['submit']:.3f} s  {f['submit'] / n * 1e6:8.0f} us/job")
    print(f"dry-run count of {n} dead letters           {f['count'] * 1e3:.1f} ms")
    print(f"first listing page (50)                     {f['list'] * 1e3:.1f} ms")
    print(f"bulk requeue of {n} (one call)              {f['bulk']:.3f} s  {f['bulk'] / n * 1e6:8.0f} us/job")
    print(f"single requeues, {s} one after the other     {f['singles']:.3f} s  {f['singles'] / s * 1e3:8.2f} ms/call")
    print(f"ratio bulk / submit per job: {f['bulk'] / f['submit']:.2f}")
    print(f"ratio single / submit per job: {(f['singles'] / s) / (f['submit'] / n):.1f}")
    return 0


async def _app_id(settings: Settings) -> uuid.UUID:
    async with open_intake(settings, pool_size=1) as intake:
        return await apps.active_id(intake.engine, "bench")


if __name__ == "__main__":
    sys.exit(main())
