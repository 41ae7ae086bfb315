"""Intake and end-to-end benchmark: satworks against a bare aiohttp handler and plain Dramatiq.

One run measures, on this machine and in this order:

  A  bare aiohttp intake (bench/baseline_aiohttp.py) under wrk: req/s, p50, p99
  B  ``satworks web`` POST /v1/jobs under the same wrk load (no worker running): req/s, p50, p99,
     checked against the jobs rows in Postgres and the messages in the broker
  C  plain Dramatiq no-op actor (bench/raw_dramatiq.py), 2 processes x 8 threads: jobs/s to drain
  C' the same with exact job tracking done the textbook way (bench/raw_tracked.py: a claim and an
     outcome committed per message), on a copy of B's jobs: what exact tracking costs done plainly
  D  ``satworks worker`` draining the canary jobs of phase B, 2 x 8: jobs/s until all succeeded,
     then enqueue-to-finish latency of paced jobs with the worker running

and prints a table with the ratios B/A, D/C, C'/C and D/C'. Figures are only comparable within one run.

    .venv/bin/python bench/intake_and_e2e.py [--quick] [--json out.json] [--no-tracked] [--baselines-only]

Uses Postgres database ``satworks_bench`` (dropped and recreated), Redis DB 14 (flushed), queue
prefix ``bench_`` and free local ports; all traffic stays on 127.0.0.1. The figures live in
bench/intake.py (A, B) and bench/e2e.py (C, D, D'); what they share in bench/harness.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import e2e, intake
from bench.harness import (
    TABLE_HEADER,
    BenchError,
    Config,
    Processes,
    Results,
    compile_package,
    cpu_busy,
    executable,
    free_port,
    git_commit,
    log,
    machine_probe,
    reset_stores,
    satworks_env,
    time_budget,
)


def report(results: Results) -> str:
    lines = [
        "",
        f"satworks intake & end-to-end bench  {results.started_at}  quick={results.quick}",
        f"machine: {results.machine}   commit: {results.commit}",
        f"before start: {results.idle_check}",
        "",
        TABLE_HEADER,
        *intake.table_rows(results),
        *e2e.table_rows(results),
    ]
    if results.intake_check:
        lines.append(f"intake check: {results.intake_check}")
    lines.append("")
    lines.append("ratios (informational; only comparable within this run):")
    lines += intake.ratio_lines(results)
    lines += e2e.ratio_lines(results)
    for problem in results.problems:
        lines.append(f"  note: {problem}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs, 5000 jobs")
    parser.add_argument("--jobs", type=int, default=None, help="jobs for C, C' and D (default 20000, quick 5000)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--no-tracked", action="store_true", help="skip C' (raw Dramatiq with textbook tracking)")
    parser.add_argument("--baselines-only", action="store_true", help="only A and C (no satworks needed)")
    args = parser.parse_args()
    cfg = Config.create(quick=bool(args.quick), jobs=args.jobs)
    log_dir = Path(tempfile.mkdtemp(prefix="satworks-bench-"))
    results = Results(
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        quick=cfg.quick,
        machine=f"{platform.node()}, {os.cpu_count()} cores, {platform.platform()}",
        commit=git_commit(),
        config=asdict(cfg),
    )
    log(f"logs in {log_dir}")
    procs = Processes(log_dir)
    failed = False
    try:
        with time_budget(cfg.budget_s):
            executable("wrk")
            busy = cpu_busy()
            load = os.getloadavg()[0]
            results.idle_check = f"{busy:.0%} CPU busy before start, load average {load:.2f}; {machine_probe()}"
            log(f"machine: {results.idle_check}")
            if busy > 0.15:
                results.problems.append(f"machine not idle before the run ({results.idle_check}): figures are noisy")
            compile_package()
            reset_stores()
            intake.phase_bare(cfg, procs, results)
            if args.baselines_only:
                e2e.phase_raw(cfg, procs, results, cfg.jobs)
            else:
                env = satworks_env(
                    http_host="127.0.0.1", http_port=str(free_port()), worker_metrics_port=str(free_port())
                )
                base, token, queued = intake.phase_intake(cfg, procs, results, env)
                e2e.phase_raw(cfg, procs, results, queued)
                if not args.no_tracked:
                    e2e.phase_tracked(cfg, procs, results, queued)
                e2e.phase_e2e(cfg, procs, results, env, base, token, queued)
                procs.stop("satworks_web")
    except BenchError as exc:
        failed = True
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
    print(report(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(results), indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
