"""Figures C, D and D': plain Dramatiq against ``satworks worker`` draining the same number of jobs.

C   plain Dramatiq no-op actor (bench/raw_dramatiq.py), 2 processes x 8 threads: jobs/s to drain
C'  the same with exact job tracking written the textbook way (bench/raw_tracked.py), on a copy of D's jobs
D   ``satworks worker`` draining the canary jobs queued by figure B, 2 x 8: jobs/s until all succeeded
D'  enqueue-to-finish latency of paced jobs with the worker of D still running

``drain_raw`` and ``drain_satworks`` take the broker, processes and pools as arguments, so
bench/scale_out.py measures the same figures on RabbitMQ and with several pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench import raw_tracked
from bench.harness import (
    BENCH_DB,
    DB_POLL_S,
    PG_BENCH_URL,
    POLL_S,
    REDIS_URL,
    BenchError,
    Config,
    DrainResult,
    Processes,
    Results,
    broker_messages,
    drain_rows,
    executable,
    free_port,
    log,
    mid_rate,
    poll,
    post_jobs,
    ratio_line,
)
from bench.raw_dramatiq import QUEUE as RAW_QUEUE
from bench.raw_dramatiq import RawBench
from bench.saturation import Watch

E2E_TARGET = 0.85  # satworks end-to-end jobs/s >= 85% of plain Dramatiq (issue 14)


@dataclass(frozen=True)
class Pool:
    """One ``satworks worker`` command: a worker pool on its queues, as on one host."""

    name: str
    queues: str = "default"
    processes: int = 2


def drain_raw(
    procs: Processes,
    n: int,
    *,
    broker_url: str,
    queue: str,
    processes: int,
    threads: int,
    watch: bool = False,
    tracked_db: str | None = None,
) -> DrainResult:
    """Enqueue ``n`` no-op messages on ``broker_url``'s ``queue``, then time ``dramatiq bench.raw_dramatiq``
    draining them; ``watch``: with the CPU and store figures of bench/saturation.py. ``tracked_db``: run
    bench/raw_tracked.py instead, one message per waiting job of ``jobs`` (copied to ``raw_jobs`` in that
    database), and check that each of the ``n`` ended ``succeeded`` in one attempt."""
    module = "bench.raw_tracked" if tracked_db else "bench.raw_dramatiq"
    raw = raw_tracked.tracked_bench(broker_url, queue, tracked_db) if tracked_db else RawBench(broker_url, queue)
    kind = "rabbitmq" if raw.rabbit else "redis"
    label = f"raw dramatiq{' + textbook tracking' if tracked_db else ''} {kind} {processes}p"
    env = {**os.environ, "BENCH_RAW_BROKER_URL": broker_url, "BENCH_RAW_QUEUE": queue}
    try:
        if tracked_db:
            env["BENCH_TRACKED_DB_URL"] = tracked_db
            with psycopg.connect(tracked_db, autocommit=True) as conn:
                ids = raw_tracked.prepare(conn)
            if len(ids) != n:
                raise BenchError(f"{label}: {len(ids)} waiting jobs to copy, expected {n}")
            log(f"{label}: enqueueing {n} messages, one per job of {raw_tracked.TABLE}")
            raw.enqueue([(job_id,) for job_id in ids])
        else:
            log(f"{label}: enqueueing {n} no-op messages")
            raw.enqueue_many(n)
        # RabbitMQ publishes without confirms: the queue's count catches up a moment later
        poll(lambda: raw.pending() == n, deadline_s=30, what=f"{label}: {n} messages pending")
        argv = [executable("dramatiq"), module, "--processes", str(processes), "--threads", str(threads)]
        log(f"{label}: {' '.join(argv[1:])}")
        series: list[tuple[float, int]] = []
        watching: Watch | None = None
        with contextlib.ExitStack() as stack:
            started = time.monotonic()
            procs.start("raw_dramatiq", argv, env)
            deadline = started + max(120.0, n / 100)
            while True:
                left = raw.pending()
                now = time.monotonic()
                series.append((now, n - left))
                if left == 0:
                    break
                if watch and watching is None and left < n:  # from the first ack: start-up excluded
                    watching = stack.enter_context(Watch(BENCH_DB, [procs.pid("raw_dramatiq")], REDIS_URL))
                    window_from = n - left
                if now > deadline:
                    raise BenchError(f"{label}: {left} of {n} messages still pending at the deadline")
                procs.check_alive("raw_dramatiq")
                time.sleep(POLL_S)
        if raw.rabbit:  # RabbitMQ counts only ready messages: let the last prefetched few (<= 2 x threads
            time.sleep(0.5)  # per process, no-ops) be acked before the stop would put them back
        procs.stop("raw_dramatiq")
        if raw.pending() != 0:  # RabbitMQ: messages delivered but never acked are back in the queue
            raise BenchError(f"{label}: {raw.pending()} messages back in the queue after the worker stopped")
        if watching is not None:
            watching.usage["jobs"] = n - window_from
        if tracked_db:
            with psycopg.connect(tracked_db, autocommit=True) as conn:
                counts = raw_tracked.outcome_counts(conn)
            if counts.get("succeeded", 0) != n or counts["max_attempts"] != 1:
                raise BenchError(f"{label}: {raw_tracked.TABLE} after the drain: {counts}, expected {n} succeeded once")
    finally:
        raw.delete()
        raw.close()
    first = next(t for t, done in series if done > 0)
    result = DrainResult(
        name=label,
        jobs=n,
        seconds=now - started,
        jobs_per_s=n / (now - started),
        steady_seconds=now - first,
        steady_jobs_per_s=n / max(now - first, 1e-6),
        mid_jobs_per_s=mid_rate(series, n),
        usage=watching.usage if watching else {},
    )
    log(
        f"{label}: {n} in {result.seconds:.2f} s = {result.jobs_per_s:,.0f} jobs/s "
        f"(from first ack: {result.steady_jobs_per_s:,.0f}; 10-90 %: {result.mid_jobs_per_s:,.0f} jobs/s)"
    )
    return result


def phase_raw(cfg: Config, procs: Processes, results: Results, n: int) -> None:
    results.raw = drain_raw(
        procs, n, broker_url=REDIS_URL, queue=RAW_QUEUE, processes=cfg.processes, threads=cfg.threads
    )


def phase_tracked(cfg: Config, procs: Processes, results: Results, n: int) -> None:
    """C': raw Dramatiq with the textbook exact tracking, on a copy of the ``n`` jobs phase D drains."""
    results.tracked = drain_raw(
        procs,
        n,
        broker_url=REDIS_URL,
        queue=RAW_QUEUE,
        processes=cfg.processes,
        threads=cfg.threads,
        tracked_db=PG_BENCH_URL,
    )


def drain_satworks(
    procs: Processes, env: dict[str, str], n: int, pools: list[Pool], *, threads: int, watch: bool = False
) -> DrainResult:
    """Start ``pools`` (each its own ``satworks worker`` command) on the ``n`` jobs already queued and time
    them until all ``n`` succeeded. The pools are left running (the caller stops them by name)."""
    label = "satworks " + " + ".join(f"{p.name}[{p.queues} {p.processes}p]" for p in pools)
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn, contextlib.ExitStack() as stack:
        started_wall, started = time.time(), time.monotonic()
        for pool in pools:
            argv = [executable("satworks"), "worker", "--queues", pool.queues]
            argv += ["--processes", str(pool.processes), "--threads", str(threads)]
            log(f"{label}: {n} jobs queued; starting {' '.join(argv[1:])}")
            procs.start(pool.name, argv, {**env, "SATWORKS_WORKER_METRICS_PORT": str(free_port())})
        watching: Watch | None = None
        deadline = started + max(180.0, n / 50)
        while True:
            row = conn.execute(
                "select count(*) filter (where status = 'succeeded'),"
                " count(*) filter (where status in ('failed', 'dead', 'cancelled')),"
                " count(*) filter (where status = 'retrying')"
                " from jobs"
            ).fetchone()
            assert row is not None
            succeeded, bad, retrying = (int(v) for v in row)
            if succeeded >= n:
                break
            if watch and watching is None and succeeded > 0:  # from the first jobs done: start-up excluded
                pgids = [procs.pid(p.name) for p in pools]
                ignore = {conn.info.backend_pid}
                watching = stack.enter_context(Watch(BENCH_DB, pgids, REDIS_URL, ignore_backends=ignore))
                window_from = succeeded
            if bad:
                raise BenchError(f"{label}: {bad} jobs failed/dead ({succeeded} succeeded)")
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: {succeeded} of {n} succeeded at the deadline")
            for pool in pools:
                procs.check_alive(pool.name)
            time.sleep(DB_POLL_S)
        stack.close()  # the watch ends here, before anything else runs
        if watching is not None:
            watching.usage["jobs"] = n - window_from
        span = conn.execute(
            "select extract(epoch from min(started_at)), extract(epoch from max(finished_at)), max(attempts) from jobs"
        ).fetchone()
        assert span is not None
        first_start, last_finish, max_attempts = float(span[0]), float(span[1]), int(span[2])
        finishes = [float(r[0]) for r in conn.execute("select extract(epoch from finished_at) from jobs order by 1")]
    seconds = last_finish - started_wall
    result = DrainResult(
        name=label,
        jobs=n,
        seconds=seconds,
        jobs_per_s=n / seconds,
        steady_seconds=last_finish - first_start,
        steady_jobs_per_s=n / max(last_finish - first_start, 1e-6),
        mid_jobs_per_s=mid_rate([(t, i + 1) for i, t in enumerate(finishes)], n),
        usage=watching.usage if watching else {},
        max_attempts=max_attempts,
    )
    log(
        f"{label}: {n} in {seconds:.2f} s = {result.jobs_per_s:,.0f} jobs/s (from first claim: "
        f"{result.steady_jobs_per_s:,.0f}; 10-90 %: {result.mid_jobs_per_s:,.0f} jobs/s); max attempts {max_attempts}"
    )
    if max_attempts > 1 or retrying:
        log(f"{label}: note: some canary jobs needed retries (max attempts {max_attempts})")
    return result


def phase_e2e(
    cfg: Config, procs: Processes, results: Results, env: dict[str, str], base: str, token: str, n: int
) -> None:
    messages = broker_messages(env)
    if messages != n:
        raise BenchError(f"satworks queue holds {messages} messages, expected {n}")
    pool = Pool("satworks_worker", "default", cfg.processes)
    results.e2e = drain_satworks(procs, env, n, [pool], threads=cfg.threads)
    if results.e2e.max_attempts > 1:
        results.problems.append(f"e2e: some canary jobs needed retries (max attempts {results.e2e.max_attempts})")
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        phase_latency(cfg, procs, results, conn, base, token)
    procs.stop(pool.name)


def phase_latency(
    cfg: Config, procs: Processes, results: Results, conn: psycopg.Connection[Any], base: str, token: str
) -> None:
    """D': enqueue-to-finish with the worker running, at a paced, moderate rate."""
    log(f"satworks latency: POSTing {cfg.latency_jobs} jobs at {cfg.latency_rate:.0f}/s")
    ids, statuses = asyncio.run(post_jobs(base, token, cfg.latency_jobs, concurrency=16, rate=cfg.latency_rate))
    if len(ids) != cfg.latency_jobs:
        raise BenchError(f"latency phase: {len(ids)} of {cfg.latency_jobs} accepted: {dict(statuses)}")
    deadline = time.monotonic() + 60.0
    while True:
        row = conn.execute(
            "select count(*) from jobs where status = 'succeeded' and id = any(%s::uuid[])", (ids,)
        ).fetchone()
        assert row is not None
        if int(row[0]) == len(ids):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"latency phase: {row[0]} of {len(ids)} succeeded after 60 s")
        procs.check_alive("satworks_worker")
        time.sleep(DB_POLL_S)
    row = conn.execute(
        "select"
        " percentile_cont(0.5) within group (order by extract(epoch from finished_at - created_at)),"
        " percentile_cont(0.99) within group (order by extract(epoch from finished_at - created_at)),"
        " percentile_cont(0.5) within group (order by extract(epoch from started_at - created_at)),"
        " percentile_cont(0.99) within group (order by extract(epoch from started_at - created_at))"
        " from jobs where id = any(%s::uuid[])",
        (ids,),
    ).fetchone()
    assert row is not None
    finish_p50, finish_p99, start_p50, start_p99 = (float(v) * 1e3 for v in row)
    results.latency = {
        "jobs": len(ids),
        "rate_per_s": cfg.latency_rate,
        "finish_p50_ms": finish_p50,
        "finish_p99_ms": finish_p99,
        "start_p50_ms": start_p50,
        "start_p99_ms": start_p99,
    }
    log(
        f"satworks latency: created->finished p50 {finish_p50:.1f} ms, p99 {finish_p99:.1f} ms; "
        f"created->started p50 {start_p50:.1f} ms"
    )


def table_rows(results: Results) -> list[str]:
    lines: list[str] = []
    for label, drain in (
        ("C raw dramatiq no-op", results.raw),
        ("C' raw + textbook tracking", results.tracked),
        ("D satworks e2e canary", results.e2e),
    ):
        if drain is not None:
            lines += drain_rows(label, drain)
    if results.latency:
        lat = results.latency
        lines.append(
            f"D' enqueue->finish, {lat['jobs']:.0f} jobs paced at {lat['rate_per_s']:.0f}/s, worker running: "
            f"p50 {lat['finish_p50_ms']:.1f} ms, p99 {lat['finish_p99_ms']:.1f} ms "
            f"(enqueue->start p50 {lat['start_p50_ms']:.1f} ms, p99 {lat['start_p99_ms']:.1f} ms)"
        )
    return lines


def ratio_lines(results: Results) -> list[str]:
    if not (results.raw and results.e2e):
        return []
    steady = results.e2e.steady_jobs_per_s / results.raw.steady_jobs_per_s
    mid = results.e2e.mid_jobs_per_s / results.raw.mid_jobs_per_s if results.raw.mid_jobs_per_s else 0.0
    lines = [
        ratio_line("e2e / raw dramatiq jobs/s", results.e2e.jobs_per_s / results.raw.jobs_per_s, E2E_TARGET),
        f"  (steady-state rates: {steady:.2f}; 10-90 %, as scale_out.py: {mid:.2f})",
    ]
    if results.tracked:
        tracked, e2e, raw = results.tracked, results.e2e, results.raw
        lines += [
            f"  textbook tracking / raw dramatiq jobs/s = {tracked.jobs_per_s / raw.jobs_per_s:6.2f}"
            f"   (steady {tracked.steady_jobs_per_s / raw.steady_jobs_per_s:.2f})",
            f"  e2e / textbook tracking jobs/s          = {e2e.jobs_per_s / tracked.jobs_per_s:6.2f}"
            f"   (steady {e2e.steady_jobs_per_s / tracked.steady_jobs_per_s:.2f})",
        ]
    return lines
