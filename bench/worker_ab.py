"""Worker A/B: two source trees' drain beside plain Dramatiq, alternating, with medians.

Back-to-back runs of one tree's ``scale_out.py`` differ by up to ±0.1 in the satworks / raw ratio on a
2-core VM, more than most changes to the worker move it. This runs each tree's own
``bench/scale_out.py --only redis_raw,redis_sw`` in turn (A B, B A, ...) and prints, per round and as
medians: the ratio (10-90 % rates), satworks' jobs/s, its worker's start-up (the command until its first
claim), and the CPU per job of the worker processes, Postgres and Redis. The worker's Dramatiq process
imports from its working directory, the tree's root, and ``satworks web`` from ``PYTHONPATH``, set to
the tree, so each round runs that tree's code.

    .venv/bin/python bench/worker_ab.py --tree-a /tmp/base --tree-b . [--rounds 4] [--jobs 30000]

A tree is a directory holding ``satworks`` and ``bench`` (``git archive <commit> satworks bench | tar -x
-C DIR``, or a checkout). Uses what ``scale_out.py`` uses (``BENCH_DB``, ``BENCH_REDIS_DB``, reset per
case). Exits non-zero only when a round fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import machine_speed

KINDS = {"worker": "watched", "postgres": "postgres_bench_db", "redis": "redis"}


def one_round(tree: Path, jobs: int, out: Path) -> dict[str, float]:
    """One ``scale_out.py`` run of ``tree``: the ratio, satworks' rate and CPU per job by kind."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, str(tree / "bench" / "scale_out.py"), "--jobs", str(jobs)]
    argv += ["--only", "redis_raw,redis_sw", "--json", str(out)]
    done = subprocess.run(argv, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: scale_out.py failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    results: dict[str, Any] = json.loads(out.read_text())["results"]
    raw, ours = results["redis_raw"], results["redis_sw"]
    usage = ours["usage"]
    figures = {
        "ratio": ours["mid_jobs_per_s"] / raw["mid_jobs_per_s"],
        "jobs_per_s": ours["mid_jobs_per_s"],
        "startup_s": ours["seconds"] - ours["steady_seconds"],  # the worker command until its first claim
    }
    for name, kind in KINDS.items():
        figures[f"{name}_ms"] = usage["cores"][kind] * usage["seconds"] / max(usage["jobs"], 1) * 1e3
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree-a", type=Path, required=True)
    parser.add_argument("--tree-b", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=4, help="runs per tree (about 40 s each)")
    parser.add_argument("--jobs", type=int, default=30_000)
    args = parser.parse_args()
    trees = {"A": args.tree_a.resolve(), "B": args.tree_b.resolve()}
    for tree in trees.values():
        if not (tree / "satworks" / "__init__.py").exists() or not (tree / "bench" / "scale_out.py").exists():
            parser.error(f"{tree} holds no satworks package or no bench/scale_out.py")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    columns = ("ratio", "jobs_per_s", "startup_s", "worker_ms", "postgres_ms", "redis_ms", "rt_us", "loop_ms")
    print(f"{'round':<8}{'tree':<6}" + "".join(f"{c:>13}" for c in columns), flush=True)
    with tempfile.TemporaryDirectory(prefix="satworks-worker-ab-") as tmp:
        for round_ in range(args.rounds):
            for name in trees if round_ % 2 == 0 else reversed(list(trees)):
                speed = machine_speed()  # before the round: the machine's spell, not satworks' load
                figures = {**one_round(trees[name], args.jobs, Path(tmp) / f"{name}{round_}.json"), **speed}
                runs[name].append(figures)
                print(f"{round_ + 1:<8}{name:<6}" + "".join(f"{figures[c]:>13.3f}" for c in columns), flush=True)
    print("\nmedians")
    medians = {name: {c: statistics.median(r[c] for r in rs) for c in columns} for name, rs in runs.items()}
    for name, m in medians.items():
        print(f"{'':<8}{name:<6}" + "".join(f"{m[c]:>13.3f}" for c in columns))
    print(f"{'B / A':<14}" + "".join(f"{medians['B'][c] / medians['A'][c]:>13.2f}" for c in columns))
    print(f"\nA = {trees['A']}\nB = {trees['B']}")
    print("ratio: satworks / raw Dramatiq, 10-90 % rates; startup_s: worker command to first claim; *_ms: CPU per job")
    print("rt_us, loop_ms: the machine's speed just before the round (bench/harness.py machine_speed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
