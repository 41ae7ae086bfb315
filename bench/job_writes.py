"""What a job's state moves cost Postgres, and the share of that which keeps ``job_watch``, in one run.

Two databases are migrated to head side by side; in one the triggers that keep ``job_watch``
(``job_watch_inserted``/``_updated``/``_deleted``, migration 0013) are disabled, which no deployment
does: it prices the watch, the cost of listing, reconciling and counting in O(limit) (bench/cost_curves.py).
Each then takes the same statements the intake and the status writer send: ``--jobs`` rows inserted in
batches of ``--batch`` (``INSERT_BATCH``), then claimed and finished batch by batch (``FINISH_AND_CLAIM``:
the previous batch's outcomes and the next batch's claims in one statement, as a busy worker's writer
sends them), on one autocommit connection. Rounds alternate between the two so a change in machine load
hits both. Printed per round: jobs/s for the inserts and for claim+finish, the Postgres backend's CPU per
job for each (from /proc, so Postgres must run on this machine), the share of ``jobs`` updates Postgres
made in place (HOT), and the sizes of ``jobs`` and its indexes.

Before migration 0014 this bench compared a database at ``0012_cost_indexes`` with head; the statements
have changed with the schema since (the intake's marker table, ``started_attempt``), so that comparison is
in bench/RESULTS.md only.

Usage: ``python bench/job_writes.py [--jobs 20000] [--batch 16] [--rounds 2]``. Uses databases
``satworks_bench_writes_unwatched`` and ``satworks_bench_writes_head`` (dropped and recreated); exits 1 on
an error or a wrong count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import PG_ADMIN_URL, PG_SERVER, BenchError, process_cpu_s, recreate_database
from satworks.db import jobs as q
from satworks.db.migrate import upgrade
from satworks.jobs.request import JobIn
from satworks.jobs.status import JobStatus
from satworks.jobs.submission import job_row
from satworks.workers.status import Outcome, outcomes_json

VARIANTS = ("unwatched", "head")
WATCH_TRIGGERS = ("job_watch_inserted", "job_watch_updated", "job_watch_deleted")
FINISHED_AT = datetime(2026, 12, 6, tzinfo=UTC)


def prepare(name: str) -> str:
    database = f"satworks_bench_writes_{name}"
    recreate_database(database, admin_url=PG_ADMIN_URL, create=True)
    upgrade(f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{database}", "head")
    dsn = f"{PG_SERVER}/{database}"
    if name == "unwatched":
        with psycopg.connect(dsn, autocommit=True) as conn:
            for trigger in WATCH_TRIGGERS:
                conn.execute(f"ALTER TABLE jobs DISABLE TRIGGER {trigger}")
    return dsn


def backend_cpu_s(conn: psycopg.Connection[Any]) -> float:
    """CPU seconds (user + system) the server process of ``conn`` has used so far."""
    return process_cpu_s(conn.info.backend_pid)


def one_round(dsn: str, jobs: int, batch: int) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs CASCADE")
        if conn.execute("SELECT to_regclass('job_watch')").fetchone() != (None,):
            conn.execute("TRUNCATE job_watch")
        app_id = uuid.uuid4()
        conn.execute(
            "INSERT INTO apps (id, name, key_id, key_hash, scopes) VALUES (%s, %s, %s, 'h', '{jobs}')",
            (app_id, f"writes-{app_id.hex[:8]}", app_id.hex),
        )
        rows = [
            job_row(JobIn.model_validate({"type": "canary"}), app_id=app_id, idempotency_key=None, queue_prefix="b_")[0]
            for _ in range(jobs)
        ]
        before = _updates(conn)
        cpu_at = backend_cpu_s(conn)
        started = time.perf_counter()
        for i in range(0, jobs, batch):
            conn.execute(q.INSERT_BATCH, (q.rows_json(rows[i : i + batch]),))
        inserted_s = time.perf_counter() - started
        now = backend_cpu_s(conn)
        insert_cpu_s, cpu_at = now - cpu_at, now

        ids = [row.id for row in rows]
        claimed = 0
        previous: list[uuid.UUID] = []
        started = time.perf_counter()
        for i in range(0, jobs + batch, batch):
            chunk = ids[i : i + batch]
            claims = (q.uuid_array(chunk), q.int_array([0] * len(chunk)), q.bool_array([True] * len(chunk)))
            if previous:
                outcomes = outcomes_json(
                    {j: Outcome(j, JobStatus.SUCCEEDED, result={}, finished_at=FINISHED_AT) for j in previous}
                )
                claimed += len(conn.execute(q.FINISH_AND_CLAIM, (outcomes, *claims)).fetchall())
            elif chunk:
                claimed += len(conn.execute(q.CLAIM_BATCH, claims).fetchall())
            previous = chunk
        moved_s = time.perf_counter() - started
        moves_cpu_s = backend_cpu_s(conn) - cpu_at
        done = conn.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()
        if claimed != jobs or done != (jobs,):
            raise BenchError(f"claimed {claimed}, succeeded {done}, expected {jobs}")
        after = _updates(conn)
        sizes = conn.execute("SELECT pg_relation_size('jobs'), pg_indexes_size('jobs')").fetchone()
    updates, hot = after[0] - before[0], after[1] - before[1]
    return {
        "insert_jobs_s": jobs / inserted_s,
        "claim_finish_jobs_s": jobs / moved_s,
        "insert_cpu_ms": insert_cpu_s * 1e3 / jobs,
        "claim_finish_cpu_ms": moves_cpu_s * 1e3 / jobs,
        "hot_share": hot / updates if updates else float("nan"),
        "heap_mb": sizes[0] / 2**20 if sizes else 0.0,
        "indexes_mb": sizes[1] / 2**20 if sizes else 0.0,
    }


def _updates(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """``jobs`` updates and HOT updates so far, once the statistics of earlier statements are flushed."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    try:
        dsns = {name: prepare(name) for name in VARIANTS}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        for round_no in range(1, args.rounds + 1):
            for name, dsn in dsns.items():
                got = one_round(dsn, args.jobs, args.batch)
                results[name].append(got)
                print(
                    f"round {round_no} {name:9s} insert {got['insert_jobs_s']:7,.0f} jobs/s"
                    f" ({got['insert_cpu_ms']:.3f} ms CPU/job)  claim+finish {got['claim_finish_jobs_s']:7,.0f} jobs/s"
                    f" ({got['claim_finish_cpu_ms']:.3f} ms CPU/job)  HOT {got['hot_share']:6.1%}"
                    f"  jobs heap {got['heap_mb']:.1f} MB, indexes {got['indexes_mb']:.1f} MB",
                    flush=True,
                )
        medians = {
            name: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            for name, rounds in results.items()
        }
        b, a = medians["unwatched"], medians["head"]
        for step in ("insert", "claim_finish"):
            print(
                f"median {step:12s} head / unwatched: jobs/s {a[f'{step}_jobs_s'] / b[f'{step}_jobs_s']:.2f},"
                f" Postgres CPU per job {a[f'{step}_cpu_ms']:.3f} / {b[f'{step}_cpu_ms']:.3f} ms"
                f" (the watch's share {1 - b[f'{step}_cpu_ms'] / a[f'{step}_cpu_ms']:.0%})"
            )
        print(f"HOT share            unwatched {b['hot_share']:.1%}, head {a['hot_share']:.1%}")
    except (BenchError, psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for name in VARIANTS:
            recreate_database(f"satworks_bench_writes_{name}", admin_url=PG_ADMIN_URL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
