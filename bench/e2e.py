"""Figures C, D and D': plain Dramatiq against ``satworks worker`` draining the same number of jobs.

C   plain Dramatiq no-op actor (bench/raw_dramatiq.py), 2 processes x 8 threads: jobs/s to drain
D   ``satworks worker`` draining the canary jobs queued by figure B, 2 x 8: jobs/s until all succeeded
D'  enqueue-to-finish latency of paced jobs with the worker of D still running
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psycopg

from bench.harness import (
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
    log,
    post_jobs,
    ratio_line,
)

E2E_TARGET = 0.50  # satworks end-to-end jobs/s >= 50% of plain Dramatiq


def phase_raw(cfg: Config, procs: Processes, results: Results, n: int) -> None:
    os.environ["BENCH_RAW_REDIS_URL"] = REDIS_URL
    from bench import raw_dramatiq  # reads BENCH_RAW_REDIS_URL when imported

    log(f"raw dramatiq: enqueueing {n} no-op messages")
    raw_dramatiq.enqueue_many(n)
    if raw_dramatiq.pending() != n:
        raise BenchError(f"raw dramatiq: {raw_dramatiq.pending()} messages pending, expected {n}")
    env = {**os.environ, "BENCH_RAW_REDIS_URL": REDIS_URL}
    argv = [
        executable("dramatiq"),
        "bench.raw_dramatiq",
        "--processes",
        str(cfg.processes),
        "--threads",
        str(cfg.threads),
    ]
    log(f"raw dramatiq: {' '.join(argv[1:])}")
    started = time.monotonic()
    procs.start("raw_dramatiq", argv, env)
    first: float | None = None
    deadline = started + max(120.0, n / 100)
    while True:
        left = raw_dramatiq.pending()
        now = time.monotonic()
        if first is None and left < n:
            first = now
        if left == 0:
            break
        if now > deadline:
            raise BenchError(f"raw dramatiq: {left} of {n} messages still pending at the deadline")
        procs.check_alive("raw_dramatiq")
        time.sleep(POLL_S)
    assert first is not None
    procs.stop("raw_dramatiq")
    results.raw = DrainResult(
        name="raw_dramatiq",
        jobs=n,
        seconds=now - started,
        jobs_per_s=n / (now - started),
        steady_seconds=now - first,
        steady_jobs_per_s=n / max(now - first, 1e-6),
    )
    log(
        f"raw dramatiq: {n} in {results.raw.seconds:.2f} s = {results.raw.jobs_per_s:,.0f} jobs/s "
        f"(from first ack: {results.raw.steady_jobs_per_s:,.0f} jobs/s)"
    )


def phase_e2e(
    cfg: Config, procs: Processes, results: Results, env: dict[str, str], base: str, token: str, n: int
) -> None:
    messages = broker_messages()
    if messages != n:
        raise BenchError(f"satworks queue holds {messages} messages, expected {n}")
    argv = [
        executable("satworks"),
        "worker",
        "--queues",
        "default",
        "--processes",
        str(cfg.processes),
        "--threads",
        str(cfg.threads),
    ]
    log(f"satworks e2e: {n} canary jobs queued; starting {' '.join(argv[1:])}")
    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        started_wall, started = time.time(), time.monotonic()
        procs.start("satworks_worker", argv, env)
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
            if bad:
                raise BenchError(f"satworks e2e: {bad} jobs failed/dead ({succeeded} succeeded)")
            if time.monotonic() > deadline:
                raise BenchError(f"satworks e2e: {succeeded} of {n} succeeded at the deadline")
            procs.check_alive("satworks_worker")
            time.sleep(DB_POLL_S)
        span = conn.execute(
            "select extract(epoch from min(started_at)), extract(epoch from max(finished_at)), max(attempts) from jobs"
        ).fetchone()
        assert span is not None
        first_start, last_finish, max_attempts = float(span[0]), float(span[1]), int(span[2])
        seconds = last_finish - started_wall
        results.e2e = DrainResult(
            name="satworks_e2e",
            jobs=n,
            seconds=seconds,
            jobs_per_s=n / seconds,
            steady_seconds=last_finish - first_start,
            steady_jobs_per_s=n / max(last_finish - first_start, 1e-6),
        )
        log(
            f"satworks e2e: {n} in {seconds:.2f} s = {results.e2e.jobs_per_s:,.0f} jobs/s "
            f"(from first claim: {results.e2e.steady_jobs_per_s:,.0f} jobs/s); max attempts {max_attempts}"
        )
        if max_attempts > 1 or retrying:
            results.problems.append(f"e2e: some canary jobs needed retries (max attempts {max_attempts})")
        phase_latency(cfg, procs, results, conn, base, token)
    procs.stop("satworks_worker")


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
    for label, drain in (("C raw dramatiq no-op", results.raw), ("D satworks e2e canary", results.e2e)):
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
    return [
        ratio_line("e2e / raw dramatiq jobs/s", results.e2e.jobs_per_s / results.raw.jobs_per_s, E2E_TARGET),
        f"  (steady-state rates: {steady:.2f})",
    ]
