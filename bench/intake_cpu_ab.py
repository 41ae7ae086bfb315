"""Intake A/B: two source trees' ``satworks web`` side by side, server CPU per request under the same wrk load.

On a shared machine req/s moves with whatever else runs; the CPU the web process spends per request
moves much less, and alternating the two trees round by round (A B, B A, ...) spreads the rest of the
noise over both. Both processes run at once on one database (each idle while the other is measured);
each round is one ``wrk`` run of the intake bench's load against one of them.

    .venv/bin/python bench/intake_cpu_ab.py --tree-a /tmp/base --tree-b . [--rounds 6]

A tree is a directory holding the ``satworks`` package (a checkout, or ``git archive <commit> | tar -x``);
its ``satworks web`` runs with ``PYTHONPATH`` set to it. Uses the bench stores of ``bench/harness.py``
(``BENCH_DB``, ``BENCH_REDIS_DB``), reset at the start. Prints each round and the medians; exits
non-zero only on errors.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    BenchError,
    Config,
    Processes,
    create_app_key,
    executable,
    free_port,
    group_cpu_s,
    log,
    reset_stores,
    run_wrk,
    satworks_env,
    time_budget,
    wait_http_ok,
    warm_up,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree-a", type=Path, required=True)
    parser.add_argument("--tree-b", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6, help="wrk runs per tree (3 s each)")
    args = parser.parse_args()
    trees = {"A": args.tree_a.resolve(), "B": args.tree_b.resolve()}
    for tree in trees.values():
        if not (tree / "satworks" / "__init__.py").exists():
            parser.error(f"{tree} holds no satworks package")
    cfg = Config.create(quick=True, jobs=None)
    procs = Processes(Path(tempfile.mkdtemp(prefix="satworks-bench-ab-")))
    rps: dict[str, list[float]] = {name: [] for name in trees}
    cpu_us: dict[str, list[float]] = {name: [] for name in trees}
    try:
        with time_budget(120 + 30 * args.rounds):
            reset_stores()
            env = satworks_env(http_host="127.0.0.1", http_port=str(free_port()), worker_metrics_port=str(free_port()))
            token = create_app_key(env)
            bases = {}
            for name, tree in trees.items():
                port = str(free_port())
                tree_env = {**env, "SATWORKS_HTTP_PORT": port, "PYTHONPATH": str(tree)}
                procs.start(name, [executable("satworks"), "web"], tree_env)
                bases[name] = f"http://127.0.0.1:{port}"
            for name, base in bases.items():
                wait_http_ok(procs, name, f"{base}/health")
                warm_up(base, token, cfg.warmup_requests)
            for round_ in range(args.rounds):
                for name in trees if round_ % 2 == 0 else reversed(list(trees)):
                    pgid = procs.pid(name)
                    before = group_cpu_s(pgid)
                    result = run_wrk(cfg, f"{name}{round_}", f"{bases[name]}/v1/jobs", token, procs.log_dir)
                    used = group_cpu_s(pgid) - before
                    procs.check_alive(name)
                    rps[name].append(result.rps)
                    cpu_us[name].append(1e6 * used / result.requests)
                    log(f"round {round_} {name}: {result.rps:,.0f} req/s, {cpu_us[name][-1]:.0f} µs CPU per request")
    except BenchError as exc:
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        procs.stop_all()
    print()
    for name, tree in trees.items():
        print(
            f"{name} {tree}: median {statistics.median(rps[name]):,.0f} req/s, "
            f"median {statistics.median(cpu_us[name]):.0f} µs CPU per request "
            f"(rounds: {', '.join(f'{u:.0f}' for u in cpu_us[name])})"
        )
    ratio = statistics.median(cpu_us["B"]) / statistics.median(cpu_us["A"])
    print(f"B / A CPU per request (medians) = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
