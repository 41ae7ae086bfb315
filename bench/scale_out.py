"""Scale out: satworks end to end on Redis and on RabbitMQ beside plain Dramatiq, throughput as worker
processes and pools are added, and what saturates first.

One run, in this order (each satworks case on a freshly migrated database, N jobs queued through
``satworks web`` before its workers start; each raw case N no-op messages enqueued up front):

  1  Redis:    raw Dramatiq 2 processes  vs  satworks 1 pool x 2 processes
  2  RabbitMQ: raw Dramatiq 2 processes  vs  satworks 1 pool x 2 processes
  3  scaling (Redis): raw Dramatiq 1 process; satworks 1 pool x 1 process; two pools x 1 process
     (one ``--queues default``, one ``--queues bulk``, as on two hosts; half the jobs priority normal,
     half low); two pools x 2 processes (4 processes on this machine's cores)
  4  for every case, what each kind of process used (workers, Postgres, Redis, RabbitMQ, this bench,
     everything else) and what Postgres did (commits/s, what its backends were waiting on), from
     bench/saturation.py, and a line naming what ran out first

Each worker process runs 8 threads (``--threads``). Rates: from starting the worker command until the
last job finished (includes start-up), and from 10 % to 90 % of the jobs finished (the scaling
figure: no start-up, no stragglers). Exits 1 only on errors or wrong counts.

    .venv/bin/python bench/scale_out.py [--quick] [--jobs N] [--threads T] [--only CASE,...] [--json F]

Touches: Postgres database ``BENCH_DB`` (dropped and recreated per case), Redis DB ``BENCH_REDIS_DB``
(flushed per case), RabbitMQ queues ``benchscale_*`` on vhost ``/`` (this bench's names; deleted at
the start and the end), free local ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika
import psycopg

from bench.e2e import Pool, drain_raw, drain_satworks
from bench.harness import (
    BENCH_DB,
    PG_BENCH_URL,
    REDIS_URL,
    BenchError,
    DrainResult,
    Processes,
    broker_messages,
    compile_package,
    cpu_busy,
    create_app_key,
    executable,
    free_port,
    git_commit,
    log,
    machine_probe,
    post_jobs,
    reset_stores,
    satworks_env,
    time_budget,
    wait_http_ok,
    wait_stable_count,
)
from bench.saturation import KINDS, Watch, verdict, wait_groups

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RABBIT_PREFIX = "benchscale_"  # satworks' queue prefix on RabbitMQ
RAW_RABBIT_QUEUE = "benchscale_raw"
SATWORKS_QUEUES = ("critical", "default", "bulk")


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    broker: str  # "redis" | "rabbitmq"
    raw_processes: int = 0  # > 0: plain Dramatiq with this many processes
    pools: tuple[Pool, ...] = ()  # satworks pools
    split: bool = False  # half the jobs priority low (queue bulk), half normal (default)


CASES = (
    Case("redis_raw", "raw Dramatiq, Redis, 2 processes", "redis", raw_processes=2),
    Case("redis_sw", "satworks, Redis, 1 pool x 2 processes", "redis", pools=(Pool("pool_a", "default", 2),)),
    Case("rabbit_raw", "raw Dramatiq, RabbitMQ, 2 processes", "rabbitmq", raw_processes=2),
    Case("rabbit_sw", "satworks, RabbitMQ, 1 pool x 2 processes", "rabbitmq", pools=(Pool("pool_a", "default", 2),)),
    Case("raw_1p", "raw Dramatiq, Redis, 1 process", "redis", raw_processes=1),
    Case("sw_1p", "satworks, Redis, 1 pool x 1 process", "redis", pools=(Pool("pool_a", "default", 1),)),
    Case(
        "sw_2x1",
        "satworks, Redis, 2 pools x 1 process",
        "redis",
        pools=(Pool("pool_a", "default", 1), Pool("pool_b", "bulk", 1)),
        split=True,
    ),
    Case(
        "sw_2x2",
        "satworks, Redis, 2 pools x 2 processes",
        "redis",
        pools=(Pool("pool_a", "default", 2), Pool("pool_b", "bulk", 2)),
        split=True,
    ),
)


def delete_rabbit_queues() -> None:
    """This bench's queues on RabbitMQ (satworks' with prefix ``benchscale_``, the raw baseline's)."""
    names = [RABBIT_PREFIX + q + s for q in SATWORKS_QUEUES for s in ("", ".DQ", ".XQ")]
    names += [RAW_RABBIT_QUEUE + s for s in ("", ".DQ", ".XQ")]
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(RABBIT_URL))) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)  # a queue that does not exist is not an error


def run_raw(case: Case, procs: Processes, n: int, threads: int) -> DrainResult:
    reset_stores()
    url, queue = (RABBIT_URL, RAW_RABBIT_QUEUE) if case.broker == "rabbitmq" else (REDIS_URL, "raw_default")
    return drain_raw(procs, n, broker_url=url, queue=queue, processes=case.raw_processes, threads=threads, watch=True)


def run_satworks(case: Case, procs: Processes, n: int, threads: int) -> DrainResult:
    """A fresh database; ``n`` jobs POSTed through ``satworks web`` (stopped before the drain), checked
    against the rows and the broker's queues; then the pools drain them. The intake's usage is kept
    under the drain's ``usage["intake"]``."""
    reset_stores()
    settings: dict[str, str] = {"http_host": "127.0.0.1", "http_port": str(free_port()), "log_level": "WARNING"}
    if case.broker == "rabbitmq":
        settings.update(broker_url=RABBIT_URL)
    env = satworks_env(queue_prefix=RABBIT_PREFIX if case.broker == "rabbitmq" else "bench_", **settings)
    token = create_app_key(env)
    procs.start("satworks_web", [executable("satworks"), "web"], env)
    base = f"http://127.0.0.1:{env['SATWORKS_HTTP_PORT']}"
    wait_http_ok(procs, "satworks_web", f"{base}/health")
    bodies = [('{"type":"canary","payload":{},"priority":"normal"}', n - n // 2 if case.split else n)]
    if case.split:
        bodies.append(('{"type":"canary","payload":{},"priority":"low"}', n // 2))
    log(f"{case.key}: POSTing {n} canary jobs ({', '.join(str(k) for _, k in bodies)} by priority)")
    with Watch(BENCH_DB, [procs.pid("satworks_web")], REDIS_URL) as intake:
        for body, count in bodies:
            ids, statuses = asyncio.run(post_jobs(base, token, count, concurrency=32, body=body))
            if len(ids) != count:
                raise BenchError(f"{case.key}: {len(ids)} of {count} accepted; statuses {dict(statuses)}")
    intake.usage["jobs"] = n
    log(f"{case.key}: intake {n / intake.usage['seconds']:,.0f} jobs/s; {verdict(intake.usage)}")
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        rows = wait_stable_count(conn)
    procs.stop("satworks_web")
    queued = {q: broker_messages(env, q) for q in ("default", "bulk")}
    expected = {"default": bodies[0][1], "bulk": bodies[1][1] if case.split else 0}
    if rows != n or queued != expected:
        raise BenchError(f"{case.key}: {rows} jobs rows and queues {queued} for {n} jobs ({expected} expected)")
    try:
        drained = drain_satworks(procs, env, n, list(case.pools), threads=threads, watch=True)
    finally:
        for pool in case.pools:
            procs.stop(pool.name)
    drained.usage = {**drained.usage, "intake": intake.usage}
    return drained


# --- the report ---------------------------------------------------------------------------------------


def _rate(results: dict[str, DrainResult], key: str, mid: bool = False) -> float:
    res = results.get(key)
    return (res.mid_jobs_per_s if mid else res.jobs_per_s) if res else float("nan")


def report(meta: dict[str, Any], results: dict[str, DrainResult]) -> str:
    lines = [
        "",
        f"satworks scale-out bench  {meta['started_at']}  quick={meta['quick']}  jobs={meta['jobs']}  "
        f"threads per process={meta['threads']}",
        f"machine: {meta['machine']}   commit: {meta['commit']}",
        f"before start: {meta['idle_check']}",
        "",
        f"{'case':<44}{'jobs':>7}{'seconds':>9}{'jobs/s':>9}{'10-90%/s':>10}",
    ]
    for case in CASES:
        if (res := results.get(case.key)) is not None:
            lines.append(
                f"{case.label:<44}{res.jobs:>7}{res.seconds:>9.2f}{res.jobs_per_s:>9,.0f}{res.mid_jobs_per_s:>10,.0f}"
            )
    ratios = [
        ("satworks / raw, Redis", "redis_sw", "redis_raw"),
        ("satworks / raw, RabbitMQ", "rabbit_sw", "rabbit_raw"),
        ("satworks RabbitMQ / Redis", "rabbit_sw", "redis_sw"),
        ("raw RabbitMQ / Redis", "rabbit_raw", "redis_raw"),
        ("raw 2 processes / 1", "redis_raw", "raw_1p"),
        ("satworks 1 pool x 2 / x 1", "redis_sw", "sw_1p"),
        ("satworks 2 pools x 1 / 1 pool x 1", "sw_2x1", "sw_1p"),
        ("satworks 2 pools x 2 / 1 pool x 1", "sw_2x2", "sw_1p"),
        ("satworks 2 pools x 2 / 1 pool x 2", "sw_2x2", "redis_sw"),
    ]
    lines += ["", f"ratios (only comparable within this run){'from start':>16}{'10-90%':>10}"]
    for label, top, bottom in ratios:
        if top in results and bottom in results:
            whole = _rate(results, top) / _rate(results, bottom)
            mid = _rate(results, top, mid=True) / _rate(results, bottom, mid=True)
            lines.append(f"  {label:<40}{whole:>14.2f}{mid:>10.2f}")
    windows = [(f"{c.key}", results[c.key].usage) for c in CASES if c.key in results and results[c.key].usage]
    windows += [(f"{k} intake", u["intake"]) for k, u in windows if "intake" in u]
    short = {"watched": "measured", "postgres_bench_db": "pg bench", "postgres_other": "pg other"}
    head = "".join(f"{short.get(k, k):>9}" for k in KINDS)
    lines += [
        "",
        "what each window used, in cores (bench/saturation.py). measured: the worker pools (from the first job",
        "done to the last) or, in the intake rows, `satworks web` while the bench POSTed (bench: the client)",
        f"{'window':<18}{'busy':>6}{head}{'busiest':>9}{'pg tx/s':>9}{'pg conns':>9}{'redis op/s':>11}",
    ]
    for label, u in windows:
        cores = "".join(f"{u['cores'][k]:>9.2f}" for k in KINDS)
        lines.append(
            f"{label:<18}{u['machine_busy']:>6.0%}{cores}{u['busiest_process']:>9.2f}"
            f"{u['pg_commits_per_s']:>9,}{u['pg_connections_max']:>9}{u['redis_commands_per_s']:>11,}"
        )
    lines += ["", "CPU per job, ms (cores x window / jobs finished in it): what each kind costs wherever it runs"]
    lines.append(f"{'window':<18}{'':>6}{''.join(f'{short.get(k, k):>9}' for k in KINDS[:5])}")
    for label, u in windows:
        per_job = "".join(f"{u['cores'][k] * u['seconds'] / max(u['jobs'], 1) * 1e3:>9.3f}" for k in KINDS[:5])
        lines.append(f"{label:<18}{'':>6}{per_job}")
    lines += ["", "Postgres backends of the bench database, average number in each state (sampled every 50 ms):"]
    for case in CASES:
        if (res := results.get(case.key)) is not None and res.usage.get("pg_states"):
            groups = ", ".join(f"{g} {v:.2f}" for g, v in wait_groups(res.usage["pg_states"]).items())
            states = ", ".join(f"{s} {v:.2f}" for s, v in list(res.usage["pg_states"].items())[:5])
            lines.append(f"  {case.key:<12}{groups}")
            lines.append(f"  {'':<12}({states})")
    lines += ["", "what ran out first:"]
    for label, u in windows:
        lines.append(f"  {label:<18}{verdict(u)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6000 jobs per case instead of 20000")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per case")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (default 8)")
    parser.add_argument("--only", default="", help="comma-separated case keys (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    n = args.jobs or (6_000 if args.quick else 20_000)
    cases = [c for c in CASES if not args.only or c.key in args.only.split(",")]
    log_dir = Path(tempfile.mkdtemp(prefix="satworks-bench-scale-"))
    log(f"logs in {log_dir}")
    busy = cpu_busy()
    meta = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": bool(args.quick),
        "jobs": n,
        "threads": args.threads,
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.platform()}",
        "commit": git_commit(),
        "idle_check": f"{busy:.0%} CPU busy before start, load average {os.getloadavg()[0]:.2f}; {machine_probe()}",
    }
    log(f"machine: {meta['idle_check']}")
    procs = Processes(log_dir)
    results: dict[str, DrainResult] = {}
    failed = False
    try:
        with time_budget(420 if args.quick else 1_200):
            compile_package()
            delete_rabbit_queues()
            for case in cases:
                results[case.key] = (run_raw if case.raw_processes else run_satworks)(case, procs, n, args.threads)
    except BenchError as exc:
        failed = True
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            delete_rabbit_queues()
    print(report(meta, results), flush=True)
    if args.json is not None:
        everything = {**meta, "results": {k: asdict(v) for k, v in results.items()}}
        args.json.write_text(json.dumps(everything, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
