"""Cost curves: how each cost grows with the data (issue 14, goal 4).

One database is grown step by step (``--sizes`` jobs rows, ``--open`` open on-chain payment
requests, ``--closed-per-job`` closed payment requests per job row, each closed-and-settled one with
its transaction); rows are generated in Postgres (``INSERT ... SELECT generate_series``), then
``VACUUM ANALYZE``. At each step, against the same running ``satworks web``:

  intake     POST /v1/jobs under wrk (req/s, p99)
  worker     ``satworks worker`` 2 x 8 draining what the intake queued (jobs/s, first claim -> last finish)
  pages      GET /v1/jobs and /v1/payments: the first page, the 1000th (a cursor built from the
             1000th page's ``seq``, as a client following ``next_cursor`` would hold), and first pages
             filtered on a status (none waiting or processing; 1 % of jobs dead); median of 7, plus the listing query's
             shared buffers (EXPLAIN ANALYZE BUFFERS)
  sweep      the on-chain sweep after a block paying ``--paid`` new requests, and after an empty block
             (the node simulator; the open requests' addresses are not the wallet's, as most are not paid)
  reconciler a run with nothing to repair (median of 5)
  retention  one pass (at most 10 batches of 1000 rows per table)

The table and a plot (``bench/cost_curves.png``; with ``--quick`` ``bench/cost_curves_quick.png``) show
each figure per step; the first step is the baseline. Nothing is asserted on time: the run fails only on
errors or wrong counts.

    .venv/bin/python bench/cost_curves.py --quick                 # 0 / 100k / 1M jobs, 1k / 10k / 100k open
    .venv/bin/python bench/cost_curves.py                         # 0 / 1M / 10M jobs, 10k / 100k / 1M open
    .venv/bin/python bench/cost_curves.py --without-0012          # the same without migration 0012's indexes

Uses ``BENCH_DB`` (dropped and recreated, and dropped at the end unless ``--keep``) and Redis DB
``BENCH_REDIS_DB`` (flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from bitcoinrpc.authproxy import AuthServiceProxy
from sqlalchemy.dialects import postgresql

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BENCH,
    BENCH_DB,
    PG_BENCH_URL,
    QUEUE_PREFIX,
    REDIS_URL,
    BenchError,
    Config,
    Processes,
    broker_messages,
    cpu_busy,
    create_app_key,
    executable,
    free_port,
    git_commit,
    headers,
    log,
    poll,
    recreate_database,
    reset_stores,
    run_wrk,
    satworks_cli,
    satworks_env,
    time_budget,
    wait_http_ok,
    warm_up,
)
from bench.payments_sweep import node_answers, pay
from satworks.db.jobs import listing_query
from satworks.http.pagination import encode_cursor
from satworks.jobs.base import JobContext, NoPayload
from satworks.jobs.maintenance import retain
from satworks.jobs.payments import sweep
from satworks.jobs.status import JobStatus
from satworks.settings import Settings
from satworks.workers.reconciler import reconcile
from tests.platform_support import worker_resources

PAGE = 50  # the API's default page size
NTH_PAGE = 1000
SPREAD = timedelta(days=56)  # generated rows are spread over the last eight weeks
FILL_CHUNK = 1_000_000  # rows per INSERT statement (each its own transaction)
# What migration 0012 adds; ``--without-0012`` drops them to measure the curves without.
INDEXES_0012 = (
    "payment_requests_app_listing",
    "payment_requests_app_status_listing",
    "payment_requests_sweep",
    "payment_txs_payment",
    "payment_txs_open",
    "payment_txs_height",
)

JOBS_FILL = """
INSERT INTO jobs (id, app_id, type, queue, priority, status, payload, result, error_type, error_message,
                  attempts, max_retries, idempotency_key, request_hash, created_at, started_at, finished_at,
                  claimed_at)
SELECT gen_random_uuid(), (%(apps)s::uuid[])[1 + g %% 5],
       (ARRAY['email.send', 'report', 'payment.notify', 'draw', 'canary'])[1 + (g / 7) %% 5],
       %(queue)s, 'normal', s.status,
       jsonb_build_object('user', 'user-' || (g %% 10007), 'amount', g %% 100000, 'note', 'cost curve row'),
       CASE WHEN s.status = 'succeeded' THEN jsonb_build_object('ok', true, 'n', g) END,
       CASE WHEN s.status IN ('failed', 'dead') THEN 'ValueError' END,
       CASE WHEN s.status IN ('failed', 'dead') THEN 'the input did not add up' END,
       CASE WHEN s.status = 'cancelled' THEN 0 ELSE 1 END, 3,
       CASE WHEN g %% 4 = 0 THEN 'key-' || g END, md5(g::text), t.created,
       CASE WHEN s.status <> 'cancelled' THEN t.created + interval '40 ms' END,
       t.created + interval '40 ms' + (g %% 997) * interval '1 ms',
       CASE WHEN s.status <> 'cancelled' THEN t.created + interval '40 ms' END
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g,
     LATERAL (SELECT CASE WHEN g %% 100 < 90 THEN 'succeeded' WHEN g %% 100 < 95 THEN 'failed'
                          WHEN g %% 100 < 96 THEN 'dead' ELSE 'cancelled' END AS status) s,
     LATERAL (SELECT %(start)s + (g - %(first)s) * %(step)s * interval '1 microsecond' AS created) t
"""
"""Finished jobs: 90 % succeeded, 5 % failed, 1 % dead, 4 % cancelled; 40 % of them the bench app's."""

OPEN_FILL = """
INSERT INTO payment_requests (id, app_id, method, status, amount_sat, required_confirmations, monitoring_s,
                              address, address_supplied, metadata, request_hash, created_at, expires_at)
SELECT gen_random_uuid(), (%(apps)s::uuid[])[1 + g %% 5], 'onchain', 'new', 10000 + g %% 90000, 1, 86400,
       'bcrt1qcostopen' || g, false, jsonb_build_object('order', g), md5(g::text),
       now() - (g %% 3600) * interval '1 second', now() + interval '1 day'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g
"""
"""Open requests waiting for money: addresses the node's wallet does not know (nobody pays them)."""

CLOSED_FILL = """
WITH made AS (
  INSERT INTO payment_requests (id, app_id, method, status, amount_sat, received_sat, required_confirmations,
                                confirmations, monitoring_s, address, address_supplied, metadata, request_hash,
                                created_at, expires_at, settled_at, checked_at)
  SELECT gen_random_uuid(), (%(apps)s::uuid[])[1 + g %% 5], 'onchain', s.status, 10000 + g %% 90000,
         CASE WHEN s.status = 'settled' THEN 10000 + g %% 90000 ELSE 0 END, 1,
         CASE WHEN s.status = 'settled' THEN 6 ELSE 0 END, 3600,
         'bcrt1qcostclosed' || g, false, jsonb_build_object('order', g), md5(g::text), t.created,
         t.created + interval '1 hour',
         CASE WHEN s.status = 'settled' THEN t.created + interval '10 minutes' END, t.created + interval '2 hours'
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g,
       LATERAL (SELECT CASE WHEN g %% 5 = 0 THEN 'expired' ELSE 'settled' END AS status) s,
       LATERAL (SELECT %(start)s + (g - %(first)s) * %(step)s * interval '1 microsecond' AS created) t
  RETURNING id, amount_sat, status, created_at, seq
)
INSERT INTO payment_txs (txid, vout, payment_id, amount_sat, state, confirmations, block_hash, block_height,
                         replaceable, received_at, updated_at)
SELECT md5(id::text) || md5(id::text || 'tx'), 0, id, amount_sat, 'confirmed', 6,
       md5(seq::text) || md5(seq::text || 'block'), 1 + seq %% 100, false, created_at + interval '5 minutes',
       created_at + interval '2 hours'
FROM made WHERE status = 'settled'
"""
"""Closed requests past their monitoring window: 80 % settled (each with its confirmed tx), 20 % expired."""

LISTINGS = {
    "jobs": "SELECT * FROM jobs WHERE app_id = %(app)s{status}{before} ORDER BY seq DESC LIMIT %(n)s",
    "payments": "SELECT * FROM payment_requests WHERE app_id = %(app)s{status}{before} ORDER BY seq DESC LIMIT %(n)s",
}
"""The statement behind the payments listing (satworks/db/payment_requests.py), for its buffers; the jobs one
is a fallback (``listing_sql`` uses the jobs listing's own statement)."""


@dataclass
class Step:
    jobs_rows: int
    open_requests: int
    closed_requests: int
    fill_s: float = 0.0
    sizes_mb: dict[str, float] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    buffers: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """Everything a step needs: where things are, and the counters that number generated rows."""

    procs: Processes
    env: dict[str, str]
    base: str
    token: str
    apps: list[uuid.UUID]
    node_url: str
    settings: Settings
    wrk: Config
    generated: dict[str, int] = field(default_factory=lambda: {"jobs": 0, "open": 0, "closed": 0})


# --- filling ------------------------------------------------------------------------------------------


def fill(conn: psycopg.Connection[Any], run: Run, kind: str, sql: str, target: int, *, ending: timedelta) -> None:
    """Generate rows of ``kind`` up to ``target`` in chunks, spread over ``SPREAD`` up to ``ending`` ago."""
    have = run.generated[kind]
    if target <= have:
        return
    n = target - have
    step_us = SPREAD.total_seconds() * 1e6 / n
    start = datetime.now(UTC) - SPREAD - ending
    for lo in range(have + 1, target + 1, FILL_CHUNK):
        hi = min(lo + FILL_CHUNK - 1, target)
        began = time.perf_counter()
        params = {
            "apps": run.apps,
            "queue": QUEUE_PREFIX + "default",
            "lo": lo,
            "hi": hi,
            "first": have + 1,
            "start": start,
            "step": step_us,
        }
        conn.execute(sql, params)
        log(f"  {kind}: rows {lo:,}..{hi:,} in {time.perf_counter() - began:.1f} s")
    run.generated[kind] = target


def grow(run: Run, step: Step) -> None:
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        began = time.perf_counter()
        fill(conn, run, "jobs", JOBS_FILL, step.jobs_rows, ending=timedelta(hours=1))
        fill(conn, run, "open", OPEN_FILL, step.open_requests, ending=timedelta(0))
        # Closed ones past their monitoring window (a sweep no longer looks at them).
        fill(conn, run, "closed", CLOSED_FILL, step.closed_requests, ending=timedelta(days=1))
        for table in ("jobs", "job_watch", "payment_requests", "payment_txs"):
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("CHECKPOINT")  # the fill's dirty pages written now, not during the measurements
        step.fill_s = time.perf_counter() - began
        for table in ("jobs", "payment_requests", "payment_txs"):
            row = conn.execute(
                "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", (table, table)
            ).fetchone()
            assert row is not None
            step.sizes_mb[f"{table} table"] = row[0] / 2**20
            step.sizes_mb[f"{table} indexes"] = row[1] / 2**20
    log(f"step filled in {step.fill_s:.1f} s; sizes MB { ({k: round(v) for k, v in step.sizes_mb.items()}) }")


# --- the figures --------------------------------------------------------------------------------------


def measure_intake(run: Run, step: Step) -> None:
    warm_up(run.base, run.token, run.wrk.warmup_requests)
    res = run_wrk(run.wrk, f"intake_{step.jobs_rows}", f"{run.base}/v1/jobs", run.token, run.procs.log_dir)
    step.figures["intake req/s"] = res.rps
    step.figures["intake p99 ms"] = res.p99_ms


def measure_worker(run: Run, step: Step, after_seq: int) -> None:
    """Drain what the intake queued (every job since ``after_seq``); jobs/s from the first claim to the
    last finish, read from the jobs rows."""
    queued = stable_messages()
    argv = [executable("satworks"), "worker", "--queues", "default", "--processes", "2", "--threads", "8"]
    log(f"worker: draining {queued} queued jobs")
    run.procs.start("satworks_worker", argv, run.env)
    try:
        poll(
            lambda: (run.procs.check_alive("satworks_worker"), broker_messages() == 0)[1],
            deadline_s=max(120.0, queued / 100),
            what="the worker to drain the queue",
            every_s=0.1,
        )
        with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:

            def settled() -> tuple[Any, ...] | None:
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), min(claimed_at), max(finished_at)"
                    " FROM jobs WHERE app_id = %s AND seq > %s",
                    (run.apps[0], after_seq),
                ).fetchone()
                assert row is not None
                return row if row[0] == row[1] else None

            total, _, first, last = poll(settled, deadline_s=30, what="every drained job to be succeeded")
    finally:
        run.procs.stop("satworks_worker")
    if total != queued:
        raise BenchError(f"worker: {total} jobs since seq {after_seq}, but {queued} messages were queued")
    seconds = (last - first).total_seconds()
    step.figures["worker jobs/s"] = total / seconds
    log(f"worker: {total} jobs in {seconds:.2f} s = {total / seconds:,.0f} jobs/s")


def stable_messages(timeout_s: float = 30.0) -> int:
    """Messages queued once the intake has committed and sent its last batches."""
    deadline = time.monotonic() + timeout_s
    previous = -1
    while (current := broker_messages()) != previous:
        if time.monotonic() > deadline:
            raise BenchError(f"the queue is still growing after {timeout_s:.0f} s")
        previous = current
        time.sleep(0.5)
    return current


def median_ms(client: httpx.Client, path: str, repeat: int) -> tuple[float, dict[str, Any]]:
    times, body = [], {}
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise BenchError(f"GET {path}: {response.status_code} {response.text[:300]}")
        body = response.json()
    return statistics.median(times), body


def listing_sql(kind: str, app: uuid.UUID, where: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The listing's statement and parameters: for jobs, the very statement ``satworks.db.jobs`` sends
    (a watched status goes through ``job_watch``)."""
    if kind == "jobs":
        status = JobStatus(where["status"]) if "status" in where else None
        statement = listing_query(app, status=status, job_type=None, before_seq=where.get("before"), limit=PAGE + 1)
        return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})), {}
    sql = LISTINGS[kind].format(
        status=" AND status = %(status)s" if "status" in where else "",
        before=" AND seq < %(before)s" if "before" in where else "",
    )
    return sql, {"app": app, "n": PAGE + 1, **where}


def shared_buffers(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> int:
    """Shared buffers (hit + read) the statement touches, from EXPLAIN (ANALYZE, BUFFERS) of its serial
    plan (a parallel worker stopped early by the LIMIT does not report its buffers)."""
    conn.execute("SET max_parallel_workers_per_gather = 0")
    row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


def measure_pages(run: Run, step: Step, repeat: int = 7) -> None:
    app = run.apps[0]
    # Statuses filtered on: none waiting or processing when measured; 1 % of the jobs dead.
    filtered = {"jobs": ("queued", "dead"), "payments": ("processing",)}
    table = {"jobs": "jobs", "payments": "payment_requests"}
    with (
        httpx.Client(base_url=run.base, headers=headers(run.token), timeout=60.0) as client,
        psycopg.connect(PG_BENCH_URL, autocommit=True) as conn,
    ):
        for changed in ("jobs", "job_watch"):  # the intake and the worker changed them (autovacuum may be off)
            conn.execute(f"ANALYZE {changed}")
        for kind in ("jobs", "payments"):
            row = conn.execute(
                f"SELECT seq FROM {table[kind]} WHERE app_id = %s ORDER BY seq DESC OFFSET %s LIMIT 1",
                (app, (NTH_PAGE - 1) * PAGE - 1),
            ).fetchone()
            cases: list[tuple[str, str, dict[str, Any]]] = [("first page", f"/v1/{kind}?limit={PAGE}", {})]
            if row is not None:
                cursor = encode_cursor(row[0])
                cases.append((f"page {NTH_PAGE}", f"/v1/{kind}?limit={PAGE}&cursor={cursor}", {"before": row[0]}))
            cases += [(f"status={st}", f"/v1/{kind}?limit={PAGE}&status={st}", {"status": st}) for st in filtered[kind]]
            for label, path, where in cases:
                took, body = median_ms(client, path, repeat)
                name = f"GET /v1/{kind} {label} ms"
                step.figures[name] = took
                sql, params = listing_sql(kind, app, where)
                step.buffers[name.removesuffix(" ms")] = shared_buffers(conn, sql, params)
                items = len(body["items"])
                if items != PAGE and body["next_cursor"] is not None:
                    raise BenchError(f"GET {path}: {items} items and next_cursor {body['next_cursor']}")
            if row is None:
                step.notes[f"{kind} page {NTH_PAGE}"] = "fewer rows than that"


def measure_sweep(run: Run, step: Step, res: Any, paid: int) -> None:
    """A block paying ``paid`` new requests (their addresses the wallet's), then an empty block."""
    node = AuthServiceProxy(run.node_url, timeout=60)
    addresses = [node.getnewaddress() for _ in range(paid)]
    now = datetime.now(UTC)
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        ids = [uuid.uuid4() for _ in addresses]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO payment_requests (id, app_id, method, status, amount_sat, required_confirmations,"
                " monitoring_s, address, address_supplied, metadata, request_hash, created_at, expires_at)"
                " VALUES (%s, %s, 'onchain', 'new', 10000, 1, 3600, %s, false, '{}', 'h', %s, %s)",
                [(i, run.apps[0], a, now, now + timedelta(hours=1)) for i, a in zip(ids, addresses, strict=True)],
            )
        pay(node, addresses)
        began = time.perf_counter()
        paid_sweep = sweep(res.payments)
        step.figures["sweep, block paying k ms"] = (time.perf_counter() - began) * 1000
        row = conn.execute(
            "SELECT count(*) FROM payment_requests WHERE id = ANY(%s) AND status = 'settled'", (ids,)
        ).fetchone()
        assert row is not None
        if row[0] != paid:
            raise BenchError(f"sweep: {row[0]} of the {paid} paid requests settled ({paid_sweep})")
        node.generatetoaddress(1, node.getnewaddress())
        began = time.perf_counter()
        empty = sweep(res.payments)
        step.figures["sweep, empty block ms"] = (time.perf_counter() - began) * 1000
    step.notes["sweep"] = {"paid block": paid_sweep, "empty block": empty}
    log(f"sweep: paid block {paid_sweep}, empty block {empty}")


def measure_maintenance(run: Run, step: Step, res: Any) -> None:
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        result = reconcile(res)
        runs.append((time.perf_counter() - began) * 1000)
        if any(result.get(k) for k in ("requeued", "expired", "outcome_lost", "broker_wiped")):
            raise BenchError(f"reconciler repaired something: {result}")
    step.figures["reconciler run ms"] = statistics.median(runs)
    began = time.perf_counter()
    deleted = retain(JobContext(uuid.uuid4(), 1, run.settings, res), NoPayload())
    step.figures["retention pass ms"] = (time.perf_counter() - began) * 1000
    if deleted["jobs"]:
        step.figures["retention ms per 1000 jobs deleted"] = step.figures["retention pass ms"] * 1000 / deleted["jobs"]
    step.notes["retention deleted"] = deleted
    log(f"reconciler p50 {step.figures['reconciler run ms']:.1f} ms; retention deleted {deleted}")


def max_seq(app: uuid.UUID) -> int:
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM jobs WHERE app_id = %s", (app,)).fetchone()
    assert row is not None
    return int(row[0])


def measure(run: Run, step: Step, res: Any, paid: int) -> None:
    after = max_seq(run.apps[0])
    measure_intake(run, step)
    measure_worker(run, step, after)
    measure_pages(run, step)
    measure_sweep(run, step, res, paid)
    measure_maintenance(run, step, res)


# --- the report ---------------------------------------------------------------------------------------


def table(steps: list[Step]) -> str:
    names = list(dict.fromkeys(n for s in steps for n in s.figures))
    width = max(len(n) for n in names) + 2
    head = f"{'':<{width}}" + "".join(f"{f'{s.jobs_rows:,} jobs':>16}" for s in steps)
    head2 = f"{'':<{width}}" + "".join(f"{f'{s.open_requests:,} open':>16}" for s in steps)
    head3 = f"{'':<{width}}" + "".join(f"{f'{s.closed_requests:,} closed':>16}" for s in steps)
    lines = [head, head2, head3]
    for name in names:
        cells = ""
        for s in steps:
            value = s.figures.get(name)
            cells += f"{'-':>16}" if value is None else f"{value:>16,.1f}"
        first = steps[0].figures.get(name)
        last = steps[-1].figures.get(name)
        ratio = f"   last/first {last / first:5.2f}" if first and last is not None else ""
        lines.append(f"{name:<{width}}{cells}{ratio}")
    lines.append("shared buffers of the listing query (EXPLAIN ANALYZE BUFFERS):")
    for name in dict.fromkeys(n for s in steps for n in s.buffers):
        lines.append(f"  {name:<{width - 2}}" + "".join(f"{s.buffers.get(name, '-'):>16}" for s in steps))
    lines.append("sizes MB (table / indexes):")
    for name in dict.fromkeys(n for s in steps for n in s.sizes_mb):
        lines.append(f"  {name:<{width - 2}}" + "".join(f"{s.sizes_mb.get(name, 0):>16,.0f}" for s in steps))
    return "\n".join(lines)


def plot(steps: list[Step], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    jobs_x = [f"{s.jobs_rows:,}" for s in steps]
    panels = [
        (axes[0][0], jobs_x, "jobs rows", "per second", ["intake req/s", "worker jobs/s"]),
        (
            axes[0][1],
            jobs_x,
            "jobs rows (payment requests: see table)",
            "ms (median)",
            [n for n in steps[-1].figures if n.startswith("GET ")],
        ),
        (
            axes[1][0],
            [f"{s.open_requests:,}" for s in steps],
            "open on-chain requests",
            "ms",
            [
                "sweep, block paying k ms",
                "sweep, empty block ms",
            ],
        ),
        (
            axes[1][1],
            jobs_x,
            "finished jobs rows",
            "ms",
            [
                "reconciler run ms",
                "retention pass ms",
                "retention ms per 1000 jobs deleted",
            ],
        ),
    ]
    for ax, xs, xlabel, ylabel, names in panels:
        for name in names:
            ys = [s.figures.get(name, float("nan")) for s in steps]
            ax.plot(xs, ys, marker="o", label=name.removesuffix(" ms"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- the run ------------------------------------------------------------------------------------------


def sizes(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 s wrk runs")
    parser.add_argument("--sizes", type=sizes, default=None, help="jobs rows per step (default 0,1e6,1e7)")
    parser.add_argument("--open", type=sizes, default=None, help="open requests per step (default 1e4,1e5,1e6)")
    parser.add_argument("--closed-per-job", type=float, default=0.2, help="closed payment requests per jobs row")
    parser.add_argument("--paid", type=int, default=20, help="requests paid in the block each sweep reads")
    parser.add_argument("--wrk-seconds", type=int, default=None)
    parser.add_argument("--without-0012", action="store_true", help="drop migration 0012's indexes first")
    parser.add_argument(
        "--plot", type=Path, default=None, help="default: bench/cost_curves.png (--quick: cost_curves_quick.png)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.plot is None:  # a quick run must not overwrite the full-size plot RESULTS.md shows
        args.plot = BENCH / ("cost_curves_quick.png" if args.quick else "cost_curves.png")
    job_sizes = args.sizes or ([0, 100_000, 1_000_000] if args.quick else [0, 1_000_000, 10_000_000])
    open_sizes = args.open or ([1_000, 10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    if len(job_sizes) != len(open_sizes):
        raise SystemExit("--sizes and --open need as many steps")
    steps = [Step(j, o, int(j * args.closed_per_job)) for j, o in zip(job_sizes, open_sizes, strict=True)]
    wrk = Config.create(quick=True, jobs=None)
    wrk = Config(**{**wrk.__dict__, "wrk_seconds": args.wrk_seconds or (3 if args.quick else 5)})

    log_dir = Path(tempfile.mkdtemp(prefix="satworks-cost-curves-"))
    procs = Processes(log_dir)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    busy = cpu_busy()
    machine = f"{platform.node()}, {os.cpu_count()} cores; {busy:.0%} CPU busy before start"
    log(f"logs in {log_dir}; {machine}")
    failed = False
    try:
        with time_budget(4 * 3600):
            failed = not run_steps(args, steps, procs, wrk)
    except BenchError as exc:
        failed = True
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
        if not args.keep:
            recreate_database(BENCH_DB)
    done = [s for s in steps if s.figures]
    if done:
        indexes = "without 0012's indexes" if args.without_0012 else "with 0012's indexes"
        title = f"satworks cost curves  {started}  commit {git_commit()}  {indexes}"
        print(f"\n{title}\nmachine: {machine}\n{table(done)}", flush=True)
        for s in done:
            print(f"  {s.jobs_rows:,} jobs: fill {s.fill_s:.0f} s; {json.dumps(s.notes, default=str)}")
        plot(done, args.plot, title)
        print(f"plot: {args.plot}")
        if args.json:
            args.json.write_text(json.dumps([s.__dict__ for s in done], indent=2, default=str) + "\n")
    return 1 if failed else 0


def run_steps(args: argparse.Namespace, steps: list[Step], procs: Processes, wrk: Config) -> bool:
    reset_stores()
    node_port = free_port()
    node_url = f"http://satworks:satworks@127.0.0.1:{node_port}"
    node = [sys.executable, "-m", "satworks.devnodes.bitcoind", "--port", str(node_port), "--premine", "101"]
    procs.start("bitcoind", [*node, "--log-level", "WARNING"], {**os.environ})
    env = satworks_env(
        http_host="127.0.0.1",
        http_port=str(free_port()),
        worker_metrics_port=str(free_port()),
        bitcoind_rpc_url=node_url,
        log_level="WARNING",
    )
    token = create_app_key(env)
    for name in ("shop", "lottery", "mailer"):
        satworks_cli(env, "apps", "create", name, "--quiet")
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        by_name = dict(conn.execute("SELECT name, id FROM apps").fetchall())
        if args.without_0012:
            for index in INDEXES_0012:
                conn.execute(f"DROP INDEX IF EXISTS {index}")
    app_ids = [by_name["bench"], by_name["bench"], by_name["shop"], by_name["lottery"], by_name["mailer"]]
    poll(lambda: node_answers(node_url), deadline_s=30, what="the node simulator to answer", every_s=0.1)
    procs.start("satworks_web", [executable("satworks"), "web"], env)
    base = f"http://127.0.0.1:{env['SATWORKS_HTTP_PORT']}"
    wait_http_ok(procs, "satworks_web", f"{base}/health")
    settings = Settings(
        database_url=env["SATWORKS_DATABASE_URL"],
        redis_url=REDIS_URL,
        queue_prefix=QUEUE_PREFIX,
        bitcoind_rpc_url=node_url,
        log_level="WARNING",
        retention_max_batches=10,
    )
    run = Run(procs, env, base, token, app_ids, node_url, settings, wrk)
    with worker_resources(settings) as res:
        sweep(res.payments)  # the first sweep reads the whole wallet and stores the cursor
        for step in steps:
            log(f"step: {step.jobs_rows:,} jobs, {step.open_requests:,} open, {step.closed_requests:,} closed")
            grow(run, step)
            measure(run, step, res, args.paid)
            procs.check_alive("satworks_web")
    return True


if __name__ == "__main__":
    sys.exit(main())
