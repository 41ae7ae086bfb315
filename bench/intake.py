"""Figures A and B: a bare aiohttp intake and ``satworks web`` under the same wrk load.

A  bare aiohttp intake (bench/baseline_aiohttp.py) under wrk: req/s, p50, p99
B  ``satworks web`` POST /v1/jobs under the same load (no worker running): req/s, p50, p99, checked
   against the jobs rows in Postgres and the messages in the broker, then topped up to the jobs
   that figures C and D drain
"""

from __future__ import annotations

import asyncio
import os
import sys

import psycopg

from bench.harness import (
    BENCH,
    PG_BENCH_URL,
    BenchError,
    Config,
    Processes,
    Results,
    broker_messages,
    create_app_key,
    executable,
    free_port,
    http_row,
    log,
    post_jobs,
    ratio_line,
    run_wrk,
    wait_http_ok,
    wait_stable_count,
    warm_up,
)

INTAKE_TARGET = 0.40  # satworks intake req/s >= 40% of bare aiohttp


def phase_bare(cfg: Config, procs: Processes, results: Results) -> None:
    port = free_port()
    procs.start(
        "baseline_aiohttp",
        [sys.executable, str(BENCH / "baseline_aiohttp.py"), "--port", str(port)],
        {**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    wait_http_ok(procs, "baseline_aiohttp", f"{base}/health")
    warm_up(base, "bench", cfg.warmup_requests)
    results.bare = run_wrk(cfg, "bare_aiohttp", f"{base}/v1/jobs", "bench", procs.log_dir)
    procs.stop("baseline_aiohttp")


def phase_intake(cfg: Config, procs: Processes, results: Results, env: dict[str, str]) -> tuple[str, str, int]:
    """Returns (base url, API key, number of jobs now queued)."""
    token = create_app_key(env)
    procs.start("satworks_web", [executable("satworks"), "web"], env)
    base = f"http://127.0.0.1:{env['SATWORKS_HTTP_PORT']}"
    wait_http_ok(procs, "satworks_web", f"{base}/health")
    warmed = warm_up(base, token, cfg.warmup_requests)
    results.intake = wrk = run_wrk(cfg, "satworks_intake", f"{base}/v1/jobs", token, procs.log_dir)
    procs.check_alive("satworks_web")

    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn:
        rows = wait_stable_count(conn)
        expected = warmed + wrk.ok
        messages = broker_messages()
        results.intake_check = {
            "warmup_202": warmed,
            "wrk_2xx": wrk.ok,
            "wrk_non_2xx": wrk.status_errors,
            "jobs_rows": rows,
            "broker_messages": messages,
        }
        log(
            f"intake check: jobs rows {rows}, warm-up 202s {warmed} + wrk 2xx {wrk.ok} = {expected} "
            f"(diff {rows - expected}; up to {cfg.connections} requests in flight when wrk stops may "
            f"be committed without being counted), wrk non-2xx {wrk.status_errors}, "
            f"broker messages {messages}"
        )
        if not expected <= rows <= expected + cfg.connections:
            raise BenchError(f"jobs rows {rows} do not match the 202s answered ({expected})")
        if messages != rows:
            raise BenchError(f"broker holds {messages} messages for {rows} jobs rows")

        if rows < cfg.jobs:
            missing = cfg.jobs - rows
            log(f"topping up to {cfg.jobs} queued jobs: POSTing {missing} more (aiohttp client)")
            ids, statuses = asyncio.run(post_jobs(base, token, missing, concurrency=32))
            if len(ids) != missing:
                raise BenchError(f"top-up: {len(ids)} of {missing} accepted; statuses {dict(statuses)}")
            rows = wait_stable_count(conn)
            messages = broker_messages()
            if messages != rows:
                raise BenchError(f"broker holds {messages} messages for {rows} jobs rows after top-up")
    return base, token, rows


def table_rows(results: Results) -> list[str]:
    return [
        http_row(label, res)
        for label, res in (("A bare aiohttp (wrk)", results.bare), ("B satworks intake (wrk)", results.intake))
        if res is not None
    ]


def ratio_lines(results: Results) -> list[str]:
    if not (results.bare and results.intake):
        return []
    return [
        ratio_line("intake / bare aiohttp req/s", results.intake.rps / results.bare.rps, INTAKE_TARGET),
        f"  intake / bare p50 latency    = {results.intake.p50_ms / results.bare.p50_ms:6.2f}   "
        f"p99 = {results.intake.p99_ms / results.bare.p99_ms:.2f}",
    ]
