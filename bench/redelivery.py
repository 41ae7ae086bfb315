"""How long a SIGKILLed worker's job waits before another worker runs it, with production settings.

Starts a worker pool with the default heartbeat timeout (15 s) and reaper interval (5 s), gives it a
long canary job, SIGKILLs the pool mid-job, starts a fresh pool and times until the job runs again.
Prints each run and the worst case beside the bound ``heartbeat_timeout + reaper_interval``.

    .venv/bin/python bench/redelivery.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Processes, executable, poll, recreate_database, satworks_cli, satworks_env

PG = os.environ.get("SATWORKS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("SATWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
DB = "satworks_bench_redelivery"
POOL = ["worker", "--queues", "default", "--processes", "1", "--threads", "2"]


def job(conn: psycopg.Connection, job_id: str) -> tuple[str, int]:
    row = conn.execute("SELECT status, attempts FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def wait(conn: psycopg.Connection, job_id: str, want: tuple[str, int], deadline_s: float) -> float:
    start = time.monotonic()
    poll(lambda: job(conn, job_id) == want, deadline_s=deadline_s, what=f"job {job_id} to be {want}")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    recreate_database(DB, admin_url=PG)
    prefix = f"rd{uuid.uuid4().hex[:6]}_"
    server = PG.rsplit("/", 1)[0]
    env = satworks_env(
        database=DB,
        pg_server=server,
        redis_url=REDIS,
        queue_prefix=prefix,
        canary_chaos="true",
        log_level="WARNING",
        worker_metrics_port="19471",
    )
    satworks_cli(env, "migrate")
    satworks_cli(env, "apps", "create", "bench", "--quiet")
    procs = Processes(Path(tempfile.mkdtemp(prefix="satworks-redelivery-")))
    pool = [executable("satworks"), *POOL]
    times = []
    try:
        with psycopg.connect(f"{server}/{DB}", autocommit=True) as conn:
            for run in range(args.runs):
                procs.start("first", pool, env)
                payload = '{"sleep_ms": 60000, "fail_attempts": 1}'
                job_id = json.loads(satworks_cli(env, "enqueue", "canary", "--app", "bench", "--payload", payload))[
                    "id"
                ]
                wait(conn, job_id, ("running", 1), 60)
                procs.kill("first")
                killed = time.monotonic()
                procs.start("second", pool, env)
                wait(conn, job_id, ("running", 2), 120)
                times.append(time.monotonic() - killed)
                print(f"run {run + 1}: the job ran again {times[-1]:.1f} s after SIGKILL", flush=True)
                procs.kill("second")
                time.sleep(16)  # let the second pool's heartbeat expire too, so each run starts alike
    finally:
        procs.stop_all()
    print(
        f"\nworst {max(times):.1f} s, mean {sum(times) / len(times):.1f} s; "
        f"bound heartbeat_timeout + reaper_interval = 15 + 5 = 20 s (target 30 s)"
    )


if __name__ == "__main__":
    main()
