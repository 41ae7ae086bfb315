"""Intake peak and open-loop latency, bare aiohttp against ``satworks web``, 1 vs 1 and 2 vs 2 processes.

For each system (bare aiohttp, bench/baseline_aiohttp.py, and ``satworks web``, each with 1 and with 2
processes on one port) in one run:

  peak       wrk (closed loop, 64 connections): req/s, p50, p99, and the server's CPU time per request
             (all its processes, from /proc: steadier than req/s on a shared machine)
  open loop  a paced generator at ``--load`` (50 %) of that system's measured peak: requests leave on a
             fixed schedule whatever the answers do, spread over 64 pipelined connections, and each
             latency counts from the request's *scheduled* time (no coordinated omission, as wrk2):
             p50, p99, max, and the rate actually sent

then the ratios satworks / bare (1 vs 1, 2 vs 2). ``--rounds R`` repeats the whole sequence, interleaved,
and gives the ratios per round and their median (on a shared machine a round's four figures are
minutes apart at most, and the spread between rounds shows the noise). Exits 1 on any non-2xx
answer or a jobs count that does not match the 202s; never on a figure. The generator is one Python
process on the same cores: at the bare servers' rates it is itself a limit (the sent rate shows it).

    .venv/bin/python bench/open_loop.py [--seconds 3] [--load 0.5] [--processes 1,2] [--rounds 1] [--json F]

Touches: Postgres database ``satworks_bench_openloop`` (dropped and recreated), Redis DB 14 keys of
this run's own queue prefix only (deleted at the end), free local ports.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis

from bench.harness import (
    BENCH,
    JOB_BODY,
    REDIS_URL,
    BenchError,
    Config,
    HttpResult,
    Processes,
    cpu_busy,
    create_app_key,
    executable,
    free_port,
    git_commit,
    group_cpu_s,
    log,
    recreate_database,
    run_wrk,
    satworks_env,
    time_budget,
    wait_http_ok,
    wait_stable_count,
    warm_up,
)

DB = "satworks_bench_openloop"
CONNECTIONS = 64
TARGET_P99_MS = 20.0


@dataclasses.dataclass
class OpenLoop:
    rate: float  # scheduled requests per second
    sent_rate: float  # what the generator managed
    requests: int
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclasses.dataclass
class SystemResult:
    round: int
    name: str
    processes: int
    peak: HttpResult
    cpu_us_per_request: float  # the server's own CPU (all its processes) during the peak run, per request
    open_loop: OpenLoop


class _Pipelined(asyncio.Protocol):
    """One keep-alive connection: requests are written on schedule, answers matched in order."""

    def __init__(self, latencies: list[float], statuses: Counter[str]) -> None:
        self.latencies, self.statuses = latencies, statuses
        self.scheduled: deque[float] = deque()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        now = time.perf_counter()
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower() + b"\r\n"
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.statuses[head[9:12].decode()] += 1
            self.latencies.append(now - self.scheduled.popleft())


async def paced(port: int, token: str, rate: float, seconds: float) -> OpenLoop:
    """``rate`` requests per second for ``seconds``, open loop; latency from each scheduled send time."""
    body = JOB_BODY.encode()
    request = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    conns = []
    for _ in range(CONNECTIONS):
        _, protocol = await loop.create_connection(lambda: _Pipelined(latencies, statuses), "127.0.0.1", port)
        conns.append(protocol)
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due = start + sent / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while sent < total and start + sent / rate <= now:  # catch up: everything already due leaves now
            conn = conns[sent % CONNECTIONS]
            conn.scheduled.append(start + sent / rate)
            assert conn.transport is not None
            conn.transport.write(request)
            sent += 1
    sent_rate = total / max(time.perf_counter() - start, 1e-9)
    deadline = time.monotonic() + 30
    while len(latencies) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    if len(latencies) < total:
        raise BenchError(f"open loop: {len(latencies)} of {total} answered within 30 s after the last send")
    ordered = sorted(latencies)
    return OpenLoop(
        rate=rate,
        sent_rate=sent_rate,
        requests=total,
        statuses=dict(statuses),
        p50_ms=ordered[len(ordered) // 2] * 1e3,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        max_ms=ordered[-1] * 1e3,
    )


def measure(
    cfg: Config,
    args: argparse.Namespace,
    procs: Processes,
    name: str,
    processes: int,
    port: int,
    token: str,
    round_: int,
) -> SystemResult:
    base = f"http://127.0.0.1:{port}"
    warm_up(base, token, cfg.warmup_requests)
    server = f"{name}{processes}"
    cpu_before = group_cpu_s(procs.pid(server))
    peak = run_wrk(cfg, f"{name}x{processes}", f"{base}/v1/jobs", token, procs.log_dir)
    cpu_us = (group_cpu_s(procs.pid(server)) - cpu_before) / max(peak.requests, 1) * 1e6
    rate = peak.rps * args.load
    log(f"{name}x{processes}: open loop at {rate:,.0f} req/s for {args.seconds:.0f} s")
    result = asyncio.run(paced(port, token, rate, args.seconds))
    bad = {status: n for status, n in result.statuses.items() if not status.startswith("2")}
    if bad:
        raise BenchError(f"{name}x{processes}: open loop got non-2xx answers {bad}")
    log(
        f"{name}x{processes}: open loop sent {result.sent_rate:,.0f}/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, max {result.max_ms:.1f} ms"
    )
    return SystemResult(round_, name, processes, peak, cpu_us, result)


def run(args: argparse.Namespace, procs: Processes) -> list[SystemResult]:
    cfg = dataclasses.replace(Config.create(quick=True, jobs=None), wrk_seconds=max(1, round(args.seconds)))
    prefix = f"ol{uuid.uuid4().hex[:6]}_"
    env = satworks_env(database=DB, queue_prefix=prefix, log_level="WARNING")
    recreate_database(DB)
    token = create_app_key(env, "openloop")
    results: list[SystemResult] = []
    accepted = 0
    try:
        for round_, processes in ((r, n) for r in range(1, args.rounds + 1) for n in args.processes):
            port = free_port()
            name = f"bare{processes}"
            argv = [sys.executable, str(BENCH / "baseline_aiohttp.py"), "--port", str(port)]
            procs.start(name, [*argv, "--processes", str(processes)], {**os.environ})
            wait_http_ok(procs, name, f"http://127.0.0.1:{port}/health")
            results.append(measure(cfg, args, procs, "bare", processes, port, "bench", round_))
            procs.stop(name)

            port = free_port()
            name = f"satworks{processes}"
            web_env = {**env, "SATWORKS_HTTP_PORT": str(port)}
            procs.start(name, [executable("satworks"), "web", "--processes", str(processes)], web_env)
            wait_http_ok(procs, name, f"http://127.0.0.1:{port}/health")
            result = measure(cfg, args, procs, "satworks", processes, port, token, round_)
            procs.check_alive(name)
            accepted += cfg.warmup_requests + result.peak.ok + result.open_loop.statuses.get("202", 0)
            results.append(result)
            procs.stop(name)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB}", autocommit=True) as conn:
            rows = wait_stable_count(conn)
        log(f"jobs rows {rows}, 202s counted {accepted} (+ up to {CONNECTIONS} per wrk run in flight at its end)")
        if not accepted <= rows <= accepted + CONNECTIONS * len(args.processes) * args.rounds:
            raise BenchError(f"jobs rows {rows} do not match the 202s answered ({accepted})")
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"satworks:{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        recreate_database(DB)  # drop: the rows served their count
    return results


def report(results: list[SystemResult], args: argparse.Namespace, busy: float) -> str:
    lines = [
        "",
        f"intake peak & open-loop latency  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  commit {git_commit()}",
        f"wrk {round(args.seconds)} s x {CONNECTIONS} connections; open loop {args.seconds:.0f} s at "
        f"{args.load:.0%} of each peak over {CONNECTIONS} pipelined connections; {args.rounds} round(s); "
        f"CPU busy before start {busy:.0%}, load average now {os.getloadavg()[0]:.2f}",
        "",
        f"{'round':<6}{'system':<14}{'peak req/s':>11}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}  |"
        f"{'paced/s':>9}{'sent/s':>9}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}",
    ]
    for r in results:
        o = r.open_loop
        lines.append(
            f"{r.round:<6}{r.name + ' x' + str(r.processes):<14}{r.peak.rps:>11,.0f}{r.peak.p50_ms:>8.2f}"
            f"{r.peak.p99_ms:>8.2f}{r.cpu_us_per_request:>11,.0f}  |{o.rate:>9,.0f}{o.sent_rate:>9,.0f}"
            f"{o.p50_ms:>8.2f}{o.p99_ms:>8.2f}{o.max_ms:>8.1f}"
        )
    lines.append("")
    by = {(r.round, r.name, r.processes): r for r in results}
    rounds = range(1, args.rounds + 1)
    for n in args.processes:
        ratios = [
            by[k, "satworks", n].peak.rps / by[k, "bare", n].peak.rps
            for k in rounds
            if (k, "satworks", n) in by and (k, "bare", n) in by
        ]
        if ratios:
            median = statistics.median(ratios)
            lines.append(
                f"  satworks / bare req/s, {n} vs {n} processes: median {median:.2f} "
                f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})   target >= 0.40: "
                f"{'met' if median >= 0.40 else 'NOT met'}"
            )
    cpu = [
        by[k, "bare", n].cpu_us_per_request / by[k, "satworks", n].cpu_us_per_request
        for k in rounds
        for n in args.processes
        if (k, "satworks", n) in by and (k, "bare", n) in by
    ]
    if cpu:
        lines.append(
            f"  bare / satworks server CPU per request: median {statistics.median(cpu):.2f} "
            f"(all rounds and process counts: {', '.join(f'{x:.2f}' for x in cpu)}); the req/s ratio a "
            "CPU-bound server would reach with the cores to itself (Postgres and Redis CPU not counted)"
        )
    for n in args.processes:
        p99s = [by[k, "satworks", n].open_loop.p99_ms for k in rounds if (k, "satworks", n) in by]
        if p99s:
            median = statistics.median(p99s)
            lines.append(
                f"  satworks x{n} open-loop p99: median {median:.2f} ms (rounds: "
                f"{', '.join(f'{x:.1f}' for x in p99s)})   target < {TARGET_P99_MS:.0f} ms: "
                f"{'met' if median < TARGET_P99_MS else 'NOT met'}"
            )
    scaling = [
        by[k, "satworks", 2].peak.rps / by[k, "satworks", 1].peak.rps
        for k in rounds
        if (k, "satworks", 1) in by and (k, "satworks", 2) in by
    ]
    if scaling:
        lines.append(f"  satworks x2 / x1 req/s: median {statistics.median(scaling):.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk and open-loop duration per system")
    parser.add_argument("--load", type=float, default=0.5, help="open-loop rate as a share of the measured peak")
    parser.add_argument("--processes", default="1,2", help="process counts to compare, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every system, interleaved")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.processes = [int(n) for n in args.processes.split(",")]
    busy = cpu_busy()
    procs = Processes(Path(tempfile.mkdtemp(prefix="satworks-openloop-")))
    log(f"logs in {procs.log_dir}; CPU busy {busy:.0%}")
    try:
        with time_budget(600):
            results = run(args, procs)
    except BenchError as exc:
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
    print(report(results, args, busy))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
