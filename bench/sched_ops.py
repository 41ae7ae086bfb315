"""The scheduler's maintenance work at scale: a reconciler run with nothing to repair over N finished
jobs, and a payments report over N payment requests (issue 9).

    .venv/bin/python bench/sched_ops.py                 # N = 1,000,000 (about 2-3 minutes, mostly the setup)
    .venv/bin/python bench/sched_ops.py --rows 100000   # smaller

Rows are generated in Postgres with ``generate_series`` in a database of its own
(``satworks_bench_sched_ops``, dropped at the end); the broker is Redis DB 14 under the prefix
``bench_sched_`` (only those keys are deleted). Each figure is printed next to a baseline of the
same run: a trivial query's round trip for the reconciler, a plain ``count(*)`` over the same rows
for the report. Nothing is asserted on time; the run fails only if a check does not add up.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PG_SERVER, recreate_database
from satworks.db import apps
from satworks.db import reconcile as reconcile_db
from satworks.db.migrate import upgrade
from satworks.jobs.base import JobContext
from satworks.jobs.reports import build_report
from satworks.reports.spec import ReportFormat, ReportKind, ReportSpec
from satworks.settings import Settings
from satworks.workers.reconciler import reconcile
from tests.platform_support import worker_resources

DB = "satworks_bench_sched_ops"
REDIS_URL = "redis://127.0.0.1:6379/14"
PREFIX = "bench_sched_"
START = datetime(2026, 1, 1, tzinfo=UTC)

FINISHED_JOBS = """
INSERT INTO jobs (id, app_id, type, payload, priority, queue, status, max_retries, request_hash, created_at,
                  started_at, finished_at, attempts)
SELECT gen_random_uuid(), %(app)s, 'canary', '{}', 'normal', %(queue)s,
       (ARRAY['succeeded', 'succeeded', 'succeeded', 'failed', 'dead', 'cancelled'])[1 + g %% 6], 3, 'h',
       %(start)s + g * interval '1 second', %(start)s + g * interval '1 second' + interval '1 second',
       %(start)s + g * interval '1 second' + interval '2 seconds' + (g %% 997) * interval '1 millisecond', 1
FROM generate_series(1, %(n)s) g
"""

PAYMENTS = """
INSERT INTO payment_requests (id, app_id, method, status, amount_sat, received_sat, required_confirmations,
                              monitoring_s, address, address_supplied, metadata, request_hash, created_at,
                              expires_at, settled_at)
SELECT gen_random_uuid(), %(app)s, 'onchain', s.status, 1000 + g %% 100000, (g %% 100000),
       1, 3600, 'bcrt1qbench' || g, false, '{}', 'h', %(start)s + g * interval '20 ms',
       %(start)s + g * interval '20 ms' + interval '1 hour',
       CASE WHEN s.status = 'settled' THEN %(start)s + g * interval '20 ms' + (g %% 3600) * interval '1 second' END
FROM generate_series(1, %(n)s) g,
     LATERAL (SELECT (ARRAY['settled', 'settled', 'settled', 'expired', 'new', 'processing', 'invalid'])[1 + g %% 7]
              AS status) s
"""


def timed(fn: object, *args: object) -> tuple[float, object]:
    began = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - began, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20, help="reconciler runs measured")
    args = parser.parse_args()
    n = args.rows

    recreate_database(DB, create=True)
    url = f"{PG_SERVER}/{DB}"
    settings = Settings(
        database_url=url.replace("postgresql://", "postgresql+psycopg://"),
        redis_url=REDIS_URL,
        queue_prefix=PREFIX,
        log_level="ERROR",
    )
    upgrade(settings.database_url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            from satworks.db.engine import sync_engine

            engine = sync_engine(settings.database_url, pool_size=1)
            with engine.begin() as sa_conn:
                apps.create(sa_conn, "bench", admin=True, rate_limit_per_minute=None)
            engine.dispose()
            app_id = conn.execute("SELECT id FROM apps WHERE name = 'bench'").fetchone()[0]  # type: ignore[index]
            params = {"app": app_id, "queue": PREFIX + "default", "start": START, "n": n}
            setup_jobs_s, _ = timed(conn.execute, FINISHED_JOBS, params)
            setup_pay_s, _ = timed(conn.execute, PAYMENTS, params)
            conn.execute("VACUUM ANALYZE jobs")
            conn.execute("VACUUM ANALYZE payment_requests")
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('jobs'))").fetchone()[0]  # type: ignore[index]
        print(
            f"setup: {n:,} finished jobs in {setup_jobs_s:.1f} s ({size} with indexes), "
            f"{n:,} payment requests in {setup_pay_s:.1f} s (not measured below)\n"
        )

        with worker_resources(settings) as res:
            # --- the reconciler, nothing to repair -------------------------------------------------
            first = reconcile(res)  # stores the epoch (first run on this database)
            runs_ms, results = [], []
            for _ in range(args.runs):
                took, result = timed(reconcile, res)
                runs_ms.append(took * 1000)
                results.append(result)
            if any(r["requeued"] or r["expired"] or r["outcome_lost"] or r["broker_wiped"] for r in results):
                print(f"FAILED: a run repaired something: {results}")
                return 1
            with res.engine.connect() as conn:
                trivial = []
                for _ in range(args.runs):
                    began = time.perf_counter()
                    conn.exec_driver_sql("SELECT 1").scalar()
                    trivial.append((time.perf_counter() - began) * 1000)
                plans = {}
                for name, sql, qparams in (
                    (
                        "waiting",
                        reconcile_db.WAITING_DUE,
                        {
                            "before": datetime.now(UTC),
                            "after_at": datetime.min.replace(tzinfo=UTC),
                            "after_id": uuid.UUID(int=0),
                            "limit": settings.reconcile_batch,
                        },
                    ),
                    ("running", reconcile_db.RUNNING_SINCE, {"before": datetime.now(UTC), "limit": 1000}),
                ):
                    plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, qparams).scalars()
                    plans[name] = [line for line in plan]
                began = time.perf_counter()
                counted = conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar()
                full_scan_ms = (time.perf_counter() - began) * 1000
            p50, worst = statistics.median(runs_ms), max(runs_ms)
            print(f"reconciler, {n:,} finished jobs, nothing to repair ({args.runs} runs after the first {first}):")
            print(
                f"  per run p50 {p50:.1f} ms, max {worst:.1f} ms  (baseline SELECT 1: p50 "
                f"{statistics.median(trivial):.2f} ms; a count(*) over jobs: {full_scan_ms:.0f} ms, {counted:,} rows)"
            )
            print(f"  run / count(*) = {p50 / full_scan_ms:.4f}")
            for name, lines in plans.items():
                print(f"  plan of the {name} candidates query:")
                for line in lines:
                    print(f"    {line}")

            # --- a payments report over every row ---------------------------------------------------
            spec = ReportSpec(
                kind=ReportKind.PAYMENTS, from_=START, to=START + timedelta(days=365), format=ReportFormat.CSV
            )
            report_id = uuid.uuid4()
            with res.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO jobs (id, app_id, type, payload, priority, queue, status, max_retries, request_hash,"
                    " created_at) VALUES (%s, %s, 'report', %s, 'low', %s, 'running', 0, 'h', now())",
                    (report_id, app_id, spec.model_dump_json(), PREFIX + "bulk"),
                )
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            took, result = timed(build_report, JobContext(report_id, 1, settings, res), spec)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with res.engine.connect() as conn:
                began = time.perf_counter()
                counted = conn.exec_driver_sql(
                    "SELECT count(*), sum(amount_sat) FROM payment_requests WHERE app_id = %s"
                    " AND created_at >= %s AND created_at < %s",
                    (app_id, spec.from_, spec.to),
                ).one()
                count_s = time.perf_counter() - began
                content = conn.exec_driver_sql("SELECT content FROM reports WHERE id = %s", (report_id,)).scalar()
            total_line = next(line for line in bytes(content).decode().splitlines() if line.startswith("*,*,"))
            if int(total_line.split(",")[2]) != counted[0] or int(total_line.split(",")[3]) != counted[1]:
                print(f"FAILED: the report's total {total_line!r} is not {counted}")
                return 1
            print(f"\npayments report over {n:,} requests (CSV, {result['rows']} rows, {result['bytes']} bytes):")  # type: ignore[index]
            print(
                f"  {took:.2f} s  (baseline count(*)+sum over the same rows: {count_s:.2f} s;"
                f" ratio {took / count_s:.1f}x)"
            )
            print(
                f"  Python peak allocations during the job {peak / 1024:.0f} KiB; process max RSS "
                f"{rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB"
            )
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"satworks:{PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        recreate_database(DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
