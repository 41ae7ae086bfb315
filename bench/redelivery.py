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
import signal
import subprocess
import sys
import time
import uuid

import psycopg
from psycopg import sql

PG = os.environ.get("SATWORKS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("SATWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
DB = "satworks_bench_redelivery"


def env(prefix: str) -> dict[str, str]:
    server = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return {
        **os.environ,
        "SATWORKS_DATABASE_URL": f"{server}/{DB}",
        "SATWORKS_REDIS_URL": REDIS,
        "SATWORKS_QUEUE_PREFIX": prefix,
        "SATWORKS_CANARY_CHAOS": "true",
        "SATWORKS_LOG_LEVEL": "WARNING",
        "SATWORKS_WORKER_METRICS_PORT": "19471",
    }


def cli(prefix: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "satworks.cli", *args],
        env=env(prefix),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def pool(prefix: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "satworks.cli", "worker", "--queues", "default", "--processes", "1", "--threads", "2"],
        env=env(prefix),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def job(conn: psycopg.Connection, job_id: str) -> tuple[str, int]:
    row = conn.execute("SELECT status, attempts FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def wait(conn: psycopg.Connection, job_id: str, want: tuple[str, int], deadline_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if job(conn, job_id) == want:
            return time.monotonic() - start
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} never reached {want}: {job(conn, job_id)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
    prefix = f"rd{uuid.uuid4().hex[:6]}_"
    cli(prefix, "migrate")
    cli(prefix, "apps", "create", "bench", "--quiet")
    server = PG.rsplit("/", 1)[0]
    times = []
    with psycopg.connect(f"{server}/{DB}", autocommit=True) as conn:
        for run in range(args.runs):
            first = pool(prefix)
            job_id = json.loads(
                cli(
                    prefix,
                    "enqueue",
                    "canary",
                    "--app",
                    "bench",
                    "--payload",
                    '{"sleep_ms": 60000, "fail_attempts": 1}',
                )
            )["id"]
            wait(conn, job_id, ("running", 1), 60)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            killed = time.monotonic()
            second = pool(prefix)
            wait(conn, job_id, ("running", 2), 120)
            times.append(time.monotonic() - killed)
            print(f"run {run + 1}: the job ran again {times[-1]:.1f} s after SIGKILL", flush=True)
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
            time.sleep(16)  # let the second pool's heartbeat expire too, so each run starts alike
    print(
        f"\nworst {max(times):.1f} s, mean {sum(times) / len(times):.1f} s; "
        f"bound heartbeat_timeout + reaper_interval = 15 + 5 = 20 s (target 30 s)"
    )


if __name__ == "__main__":
    main()
