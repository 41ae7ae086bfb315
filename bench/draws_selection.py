"""Draw selection at scale: 1,000,000 entries, 10,000,000 tickets, 100 winners (docs/draws.md).

Measures, in one run and on one data set, seconds (best of --repeat) and peak traced memory
(tracemalloc, measured in a separate pass so tracing does not slow the timings) of:

  canonicalise   validate the submitted entries and sort them (satworks.draws.canonical_entries)
  commitment     serialise the canonical entries and SHA-256 them
  selection      build the Fenwick tree and draw k winners (the < 2 s target)
  verify proof   parse a proof document's JSON and recompute commitment and winners (the CLI's path)

beside baselines measured in the same run:

  sha256 only            hashlib over the already-built commitment preimage (the floor for "commitment")
  sort only              sorted() of the ids (the floor for "canonicalise")
  naive selection        stdlib: per round, rebuild cumulative counts (itertools.accumulate) and bisect: O(k n)
  per-ticket expansion   memory of one array entry per ticket, what "proportional to tickets" would cost

and the selection's peak memory with 10x the tickets and with 1/10 of the entries, to show it follows
the entries, not the tickets. Absolute figures depend on the machine and its load; the ratios are what
the run is for. Usage: ``python bench/draws_selection.py [--entries N] [--tickets T] [--winners K]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import sys
import time
import tracemalloc
from array import array
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate, repeat
from typing import Any

from satworks.draws import (
    Beacon,
    CanonicalEntries,
    DrawProof,
    ResolvedBeacon,
    build_proof,
    canonical_entries,
    commitment,
    commitment_preimage,
    draw_seed,
    select_winners,
    verify,
)
from satworks.draws.selection import Stream, Winner

BLOCK = hashlib.sha256(b"bench block").hexdigest()
DRAW_ID = "0b6f1c2e-bench-draw"
BEACON = Beacon(network="mainnet", height=900_000)


def make_entries(n: int, total: int, seed: int = 7) -> list[tuple[str, int]]:
    """n distinct 16-hex-digit ids in random order holding exactly ``total`` tickets (about total/n each)."""
    if total < n:
        raise SystemExit("need at least one ticket per entry")
    rng = random.Random(seed)
    mean = total // n
    tickets = [rng.randint(1, 2 * mean - 1) if mean > 1 else 1 for _ in range(n)]
    diff = total - sum(tickets)
    i = 0
    while diff:  # spread the rounding difference, keeping every count >= 1
        step = max(-(tickets[i] - 1), min(diff, 1_000)) if diff < 0 else min(diff, 1_000)
        tickets[i] += step
        diff -= step
        i = (i + 1) % n
    order = list(range(n))
    rng.shuffle(order)  # ids are allocated in submission order, as a JSON parser would
    return [(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8).hexdigest(), tickets[i]) for i in order]


def timed(fn: Callable[[], Any], repeat_count: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat_count):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_mib(fn: Callable[[], Any]) -> float:
    """Peak memory allocated while ``fn`` runs (what it keeps and what it frees), in MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def naive_selection(entries: CanonicalEntries, k: int, seed: bytes) -> list[Winner]:
    """Same draws, O(n) per round: cumulative counts rebuilt after each winner, bisect to find ticket r."""
    weights = list(entries.tickets)
    first = entries.first_tickets()
    stream = Stream(seed)
    winners = []
    for _ in range(k):
        cumulative = list(accumulate(weights))
        r, _ = stream.below(cumulative[-1])
        pos = bisect_right(cumulative, r)
        offset = r - (cumulative[pos - 1] if pos else 0)
        winners.append(Winner(entries.ids[pos], first[pos] + offset + 1))
        weights[pos] = 0
    return winners


def per_ticket_expansion(entries: CanonicalEntries) -> array[int]:
    out = array("I")
    for index, held in enumerate(entries.tickets):
        out.extend(repeat(index, held))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--tickets", type=int, default=10_000_000)
    parser.add_argument("--winners", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    n, total, k = args.entries, args.tickets, args.winners

    print(f"python {sys.version.split()[0]}; {n:,} entries, {total:,} tickets, {k} winners; best of {args.repeat}")
    pairs = make_entries(n, total)
    ids = [i for i, _ in pairs]
    entries = canonical_entries(pairs, k=k)
    committed = commitment(entries, k=k, beacon=BEACON, draw_id=DRAW_ID)
    seed = draw_seed(BLOCK, committed, DRAW_ID)
    preimage = commitment_preimage(entries, k=k, beacon=BEACON, draw_id=DRAW_ID)
    beacon = ResolvedBeacon(network="mainnet", height=900_000, block_hash=BLOCK)
    proof = build_proof(draw_id=DRAW_ID, entries=entries, k=k, beacon=beacon, committed=committed)
    proof_json = proof.model_dump_json()

    fig: dict[str, dict[str, float]] = {}

    def measure(name: str, fn: Callable[[], Any], *, memory: bool = True, repeat_count: int | None = None) -> Any:
        seconds, result = timed(fn, repeat_count or args.repeat)
        fig[name] = {"seconds": seconds}
        if memory:
            fig[name]["peak_mib"] = peak_mib(fn)
        return result

    measure("canonicalise", lambda: canonical_entries(pairs, k=k))
    measure("commitment", lambda: commitment(entries, k=k, beacon=BEACON, draw_id=DRAW_ID))
    winners = measure("selection", lambda: select_winners(entries, k, seed))
    measure("verify proof", lambda: verify(DrawProof.model_validate_json(proof_json)), repeat_count=1)
    measure("sha256 only", lambda: hashlib.sha256(preimage).digest(), memory=False)
    measure("sort only", lambda: sorted(ids))
    naive = measure("naive selection", lambda: naive_selection(entries, k, seed), repeat_count=1)
    if naive != winners:
        print("ERROR: the naive selection disagrees with the Fenwick selection", file=sys.stderr)
        return 1
    fig["per-ticket expansion"] = {"peak_mib": peak_mib(lambda: per_ticket_expansion(entries))}

    # Memory follows the entries, not the tickets.
    many_tickets = canonical_entries([(i, t * 10) for i, t in pairs], k=k)
    fewer_entries = canonical_entries(make_entries(n // 10, total), k=k)
    fig["selection, 10x tickets"] = {"peak_mib": peak_mib(lambda: select_winners(many_tickets, k, seed))}
    fig["selection, 1/10 entries"] = {"peak_mib": peak_mib(lambda: select_winners(fewer_entries, k, seed))}

    print(f"\n{'phase':<26}{'seconds':>10}{'peak MiB':>11}")
    for name, values in fig.items():
        seconds = f"{values['seconds']:.3f}" if "seconds" in values else "-"
        memory = f"{values['peak_mib']:.1f}" if "peak_mib" in values else "-"
        print(f"{name:<26}{seconds:>10}{memory:>11}")

    sel = fig["selection"]
    ratios = {
        "selection seconds / target 2 s": sel["seconds"] / 2.0,
        "commitment / sha256 only (time)": fig["commitment"]["seconds"] / fig["sha256 only"]["seconds"],
        "canonicalise / sort only (time)": fig["canonicalise"]["seconds"] / fig["sort only"]["seconds"],
        "naive selection / selection (time)": fig["naive selection"]["seconds"] / sel["seconds"],
        "per-ticket expansion / selection (memory)": fig["per-ticket expansion"]["peak_mib"] / sel["peak_mib"],
        "selection memory, 10x tickets / 1x": fig["selection, 10x tickets"]["peak_mib"] / sel["peak_mib"],
        "selection memory, 1/10 entries / 1x": fig["selection, 1/10 entries"]["peak_mib"] / sel["peak_mib"],
    }
    print()
    for name, value in ratios.items():
        print(f"{name:<44}{value:>8.2f}")
    print(f"\nselection under 2 s: {'yes' if sel['seconds'] < 2 else 'NO'} ({sel['seconds']:.3f} s)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"figures": fig, "ratios": ratios, "entries": n, "tickets": total, "winners": k}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
