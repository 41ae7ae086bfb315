"""A whole draw, from ``POST /v1/draws`` to ``completed``: 1,000,000 entries, 10,000,000 tickets, 100 winners.

Runs the real processes (``satworks web``, one ``satworks worker --queues critical``, the bitcoind
simulator) against a database of its own and prints:

  submit → 202          the request: upload, parse/validate/sort/commit in the intake's preparing
                        process, the insert of the packed entries, the first job's message
  health pings          GET /health every 20 ms during the submission: the slowest answer shows
                        whether the event loop was held (it must stay far below the submit time)
  block → completed     from the blocknotify of the beacon block to ``completed`` (the draw job: read
                        the node, load and unpack the entries, re-check the commitment, select, build
                        and store the proof)
  submission → completed  the sum, with the node's block in between
  proof download        GET /v1/draws/{id}/proof (gzip as stored)
  peak memory (VmHWM)   of the web process, its preparing process and the worker's process

beside the same work in-process in this run (``prepare_draw`` then ``build_proof``: the algorithm's
floor without HTTP, Postgres or the broker), as ratios. Usage:
``python bench/draws_job.py [--entries N] [--tickets T] [--winners K]`` (small sizes for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis
from bitcoinrpc.authproxy import AuthServiceProxy

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.draws_selection import make_entries
from bench.harness import (
    REDIS_URL,
    Processes,
    create_app_key,
    free_port,
    poll,
    recreate_database,
    satworks_env,
    time_budget,
)
from satworks.draws import DrawLimits, ResolvedBeacon, build_proof, canonical_entries
from satworks.draws.submission import DrawRules, prepare_draw

DB = f"satworks_bench_draws_{os.getpid()}"  # per run: never another run's database
PREFIX = f"bench_draws_{os.getpid()}_"
TOKEN = "bench-node-token-0123456789"


def node_answers(url: str) -> bool:
    try:
        AuthServiceProxy(url, timeout=2).getblockcount()
    except Exception:  # not up yet
        return False
    return True


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a process (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def group_peaks(pgid: int) -> dict[int, tuple[str, float]]:
    """``{pid: (command, peak MB)}`` of every live process in a process group."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace").strip()
            out[int(entry.name)] = (command, vm_hwm_mb(int(entry.name)))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return out


async def submit(base: str, key: str, body: bytes) -> tuple[dict[str, Any], float, float, int]:
    """POST the draw while pinging /health; returns (document, seconds, slowest ping s, pings)."""
    pings: list[float] = []
    done = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def ping() -> None:
            while not done.is_set():
                t = time.perf_counter()
                async with session.get(f"{base}/health") as response:
                    await response.read()
                pings.append(time.perf_counter() - t)
                await asyncio.sleep(0.02)

        pinger = asyncio.create_task(ping())
        t = time.perf_counter()
        async with session.post(
            f"{base}/v1/draws",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Idempotency-Key": "b"},
        ) as response:
            document = await response.json()
            if response.status != 202:
                raise SystemExit(f"submit answered {response.status}: {document}")
        seconds = time.perf_counter() - t
        done.set()
        await pinger
    return document, seconds, max(pings, default=0.0), len(pings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--tickets", type=int, default=10_000_000)
    parser.add_argument("--winners", type=int, default=100)
    parser.add_argument("--budget-s", type=int, default=900, help="stop (and clean up) after this long")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="satworks-draws-job-"))
    procs = Processes(logs)
    node_port, web_port = free_port(), free_port()
    node_url = f"http://satworks:satworks@127.0.0.1:{node_port}"
    base = f"http://127.0.0.1:{web_port}"
    env = satworks_env(
        database=DB,
        queue_prefix=PREFIX,
        http_port=str(web_port),
        bitcoind_rpc_url=node_url,
        bitcoind_webhook_token=TOKEN,
        bitcoin_network="regtest",
        log_level="WARNING",
        worker_metrics_port=str(free_port()),
    )
    recreate_database(DB, create=True)
    try:
        with time_budget(args.budget_s):
            start_and_run(args, procs, env, node_port, node_url, base)
    finally:
        procs.stop_all()
        recreate_database(DB)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"satworks:{PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        print(f"\nlogs: {logs}")


def start_and_run(
    args: argparse.Namespace, procs: Processes, env: dict[str, str], node_port: int, node_url: str, base: str
) -> None:
    node = [sys.executable, "-m", "satworks.devnodes.bitcoind", "--port", str(node_port), "--premine", "101"]
    procs.start("bitcoind", [*node, "--log-level", "WARNING"], {**os.environ})
    poll(lambda: node_answers(node_url), deadline_s=30, what="the node simulator", every_s=0.1)
    key = create_app_key(env)
    procs.start("web", [sys.executable, "-m", "satworks.cli", "web"], env)
    argv = ["worker", "--queues", "critical", "--processes", "1", "--threads", "2"]
    procs.start("worker", [sys.executable, "-m", "satworks.cli", *argv], env)
    poll(lambda: _answers(f"{base}/health"), deadline_s=30, what="the web process", every_s=0.1)
    run(args, procs, base, key, node_url)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run(args: argparse.Namespace, procs: Processes, base: str, key: str, node_url: str) -> None:
    payer = AuthServiceProxy(node_url, timeout=30)
    height = payer.getblockcount() + 1
    pairs = make_entries(args.entries, args.tickets)
    document = {
        "raffle_id": "bench",
        "entries": [{"id": i, "tickets": t} for i, t in pairs],
        "winners": args.winners,
        "beacon": {"type": "bitcoin_block", "height": height},
        "confirmations": 1,
    }
    body = orjson.dumps(document)
    del document
    print(f"{args.entries:,} entries, {args.tickets:,} tickets, {args.winners} winners; body {len(body) / 1e6:.1f} MB")

    # The floor, in this process: the same preparation and selection without HTTP, Postgres or the broker.
    rules = DrawRules(DrawLimits(max_entries=args.entries), "regtest", 1, 1)
    t = time.perf_counter()
    prepared = prepare_draw(body, draw_id=str(uuid.uuid4()), rules=rules)
    floor_prepare = time.perf_counter() - t
    entries = canonical_entries(pairs, k=args.winners, limits=DrawLimits(max_entries=args.entries))
    t = time.perf_counter()
    beacon = ResolvedBeacon(network="regtest", height=height, block_hash="ab" * 32)
    build_proof(draw_id=prepared.draw_id, entries=entries, k=args.winners, beacon=beacon, committed=prepared.commitment)
    floor_select = time.perf_counter() - t
    del prepared, entries, pairs

    draw, submit_s, slowest_ping, pings = asyncio.run(submit(base, key, body))
    del body
    headers = {"Authorization": f"Bearer {key}"}
    t0 = time.perf_counter()
    (block,) = payer.generatetoaddress(1, payer.getnewaddress())
    _post(f"{base}/v1/webhooks/bitcoind/blocknotify?blockhash={block}&token={TOKEN}")

    def completed() -> dict[str, Any] | None:
        doc = _get_json(f"{base}/v1/draws/{draw['id']}", headers)
        return doc if doc["status"] == "completed" else None

    done = poll(completed, deadline_s=600, what="the draw to complete", every_s=0.05)
    job_s = time.perf_counter() - t0
    t = time.perf_counter()
    proof_bytes = _get_bytes(f"{base}/v1/draws/{draw['id']}/proof", {**headers, "Accept-Encoding": "gzip"})
    proof_s = time.perf_counter() - t
    assert len(done["winners"]) == args.winners and done["beacon"]["block_hash"] == block

    print(f"\n{'phase':<40} {'seconds':>8}")
    print(f"{'submit → 202 (HTTP)':<40} {submit_s:>8.2f}")
    print(f"{'block → completed (draw job)':<40} {job_s:>8.2f}")
    print(f"{'submission → completed':<40} {submit_s + job_s:>8.2f}")
    download = f"proof download (gzip, {len(proof_bytes) / 1e6:.1f} MB)"
    print(f"{download:<40} {proof_s:>8.2f}")
    print(f"{'floor: prepare_draw in-process':<40} {floor_prepare:>8.2f}")
    print(f"{'floor: build_proof (selection) in-process':<40} {floor_select:>8.2f}")
    print(
        f"\nsubmit / floor prepare: {submit_s / floor_prepare:.1f}x; "
        f"draw job / floor selection: {job_s / floor_select:.1f}x"
    )
    print(f"health pings during the submission: {pings}, slowest {slowest_ping * 1000:.0f} ms")
    print("\npeak memory (VmHWM):")
    for name in ("web", "worker"):
        pgid = procs._running[name].pid
        for pid, (command, mb) in sorted(group_peaks(pgid).items()):
            print(f"  {name:<7} pid {pid:<8} {mb:>8.0f} MB  {command[:90]}")


def _post(url: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=30) as response:
        if response.status != 202:
            raise SystemExit(f"blocknotify answered {response.status}")


def _get_json(url: str, headers: dict[str, str]) -> Any:
    return orjson.loads(_get_bytes(url, headers))


def _get_bytes(url: str, headers: dict[str, str]) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as response:
        return bytes(response.read())


if __name__ == "__main__":
    main()
