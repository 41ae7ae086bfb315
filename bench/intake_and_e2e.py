"""Intake and end-to-end benchmark: satworks against a bare aiohttp handler and plain Dramatiq.

One run measures, on this machine and in this order:

  A  bare aiohttp intake (bench/baseline_aiohttp.py) under wrk: req/s, p50, p99
  B  ``satworks web`` POST /v1/jobs under the same wrk load (no worker running): req/s, p50, p99,
     checked against the jobs rows in Postgres and the messages in the broker
  C  plain Dramatiq no-op actor (bench/raw_dramatiq.py), 2 processes x 8 threads: jobs/s to drain
  D  ``satworks worker`` draining the canary jobs of phase B, 2 x 8: jobs/s until all succeeded,
     then enqueue-to-finish latency of paced jobs with the worker running

and prints a table with the ratios B/A and D/C. Figures are only comparable within one run.

    .venv/bin/python bench/intake_and_e2e.py [--quick] [--json out.json] [--baselines-only]

Uses Postgres database ``satworks_bench`` (dropped and recreated), Redis DB 14 (flushed), queue
prefix ``bench_`` and free local ports; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import httpx
import psycopg
import redis
from psycopg import sql

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent

BENCH_DB = "satworks_bench"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_DB = 14
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
QUEUE_PREFIX = "bench_"
SATWORKS_NAMESPACE = "satworks"  # the Redis namespace of satworks' broker (satworks/workers/broker.py)
SATWORKS_QUEUE = f"{SATWORKS_NAMESPACE}:{QUEUE_PREFIX}default"
JOB_BODY = '{"type":"canary","payload":{}}'

INTAKE_TARGET = 0.40  # satworks intake req/s >= 40% of bare aiohttp
E2E_TARGET = 0.50  # satworks end-to-end jobs/s >= 50% of plain Dramatiq

POLL_S = 0.02  # Redis polls (cheap)
DB_POLL_S = 0.25  # Postgres polls (a count over the jobs table; kept rare so it does not load the run)


class BenchError(RuntimeError):
    """Something went wrong: the run is invalid and the harness exits non-zero."""


@dataclass(frozen=True)
class Config:
    quick: bool
    wrk_seconds: int
    jobs: int
    latency_jobs: int
    latency_rate: float
    budget_s: int
    connections: int = 64
    wrk_threads: int = 2
    processes: int = 2
    threads: int = 8
    warmup_requests: int = 200

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        quick = bool(args.quick)
        return cls(
            quick=quick,
            wrk_seconds=3 if quick else 10,
            jobs=args.jobs or (5_000 if quick else 20_000),
            latency_jobs=300 if quick else 1_000,
            latency_rate=200.0,
            budget_s=420 if quick else 1_200,
        )


@dataclass
class HttpResult:
    name: str
    requests: int
    ok: int
    status_errors: int
    socket_errors: dict[str, int]
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class DrainResult:
    name: str
    jobs: int
    seconds: float  # from starting the worker command until the last job finished
    jobs_per_s: float
    steady_seconds: float  # from the first job finished (C) / started (D) until the last one finished
    steady_jobs_per_s: float


@dataclass
class Results:
    started_at: str
    quick: bool
    machine: str
    commit: str
    config: dict[str, Any]
    idle_check: str = ""
    bare: HttpResult | None = None
    intake: HttpResult | None = None
    intake_check: dict[str, int] = field(default_factory=dict)
    raw: DrainResult | None = None
    e2e: DrainResult | None = None
    latency: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# --- processes ----------------------------------------------------------------------------------------


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (its pid, hence its group id, stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Processes:
    """Servers and workers, each in its own session so that its whole process group can be stopped."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        if name in self._running:
            raise BenchError(f"{name} is already running")
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self._running[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self, name: str) -> None:
        proc = self._running[name]
        if _exited(proc.pid):
            code = proc.wait()
            del self._running[name]
            raise BenchError(f"{name} exited early with code {code}\n{self.log_tail(name)}")

    def stop(self, name: str, *, grace_s: float = 20.0) -> None:
        """SIGTERM the leader (Dramatiq's main process forwards it to its workers, once), wait for it to
        exit, then SIGKILL whatever is left of its process group."""
        proc = self._running.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while not _exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers; the unreaped leader keeps the group id ours
        proc.wait()

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name, grace_s=5.0)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return f"(no log at {path})"
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last lines of {path} ---\n" + "\n".join(tail)


@contextlib.contextmanager
def time_budget(seconds: int) -> Iterator[None]:
    """SIGALRM after ``seconds``, and SIGTERM/SIGHUP, become exceptions so cleanup always runs."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise BenchError(f"time budget of {seconds} s exceeded")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- helpers ------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found (looked in {BIN} and PATH)")
    return path


def satworks_env(http_port: int, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SATWORKS_", "PROMETHEUS_"))}
    env.update(
        SATWORKS_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{BENCH_DB}",
        SATWORKS_REDIS_URL=REDIS_URL,
        SATWORKS_QUEUE_PREFIX=QUEUE_PREFIX,
        SATWORKS_HTTP_HOST="127.0.0.1",
        SATWORKS_HTTP_PORT=str(http_port),
        SATWORKS_WORKER_METRICS_PORT=str(metrics_port),
    )
    return env


def wait_http_ok(procs: Processes, name: str, url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        procs.check_alive(name)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{name} not answering {url} after {timeout_s:.0f} s\n{procs.log_tail(name)}")
        time.sleep(0.1)


def warm_up(base_url: str, token: str, n: int) -> int:
    """``n`` sequential requests (connections, caches, JIT-less Python paths); all must be 202."""
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for _ in range(n):
            response = client.post("/v1/jobs", content=JOB_BODY, headers=_headers(token))
            statuses[response.status_code] += 1
    if set(statuses) != {202}:
        raise BenchError(f"warm-up against {base_url} got statuses {dict(statuses)}, expected only 202")
    return n


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def run_wrk(cfg: Config, name: str, url: str, token: str, log_dir: Path) -> HttpResult:
    argv = [
        executable("wrk"),
        f"-t{cfg.wrk_threads}",
        f"-c{cfg.connections}",
        f"-d{cfg.wrk_seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "post.lua"),
        url,
    ]
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_BODY": JOB_BODY}
    log(f"{name}: wrk -t{cfg.wrk_threads} -c{cfg.connections} -d{cfg.wrk_seconds}s POST {url}")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=cfg.wrk_seconds + 60)
    (log_dir / f"wrk-{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise BenchError(f"no WRK_JSON line in wrk output:\n{done.stdout}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    seconds = data["duration_us"] / 1e6
    sockets = {k: data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")}
    result = HttpResult(
        name=name,
        requests=data["requests"],
        ok=data["requests"] - data["status_errors"],
        status_errors=data["status_errors"],
        socket_errors=sockets,
        seconds=seconds,
        rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1e3,
        p90_ms=data["p90_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
    )
    log(
        f"{name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{result.requests} responses, non-2xx {result.status_errors}, socket errors {sockets}"
    )
    if result.status_errors or sockets["connect_errors"] or sockets["timeouts"]:
        raise BenchError(
            f"{name}: {result.status_errors} non-2xx responses, socket errors {sockets} "
            f"(see {log_dir / f'wrk-{name}.log'}); one more request now gets: {probe(url, token)}"
        )
    return result


def probe(url: str, token: str) -> str:
    """One request's status and body, to show what kind of errors wrk counted."""
    try:
        response = httpx.post(url, content=JOB_BODY, headers=_headers(token), timeout=10.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"{response.status_code} {response.text[:300]}"


async def post_jobs(
    base_url: str, token: str, n: int, *, concurrency: int, rate: float | None = None
) -> tuple[list[str], Counter[str]]:
    """POST ``n`` canary jobs (paced at ``rate`` per second if given); returns the 202 ids and statuses.

    Uses aiohttp's client: httpx's async client tops out near 300 req/s on this machine, which would
    make the client, not the server, the bottleneck.
    """
    ids: list[str] = []
    statuses: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession) -> None:
        async with gate:
            try:
                async with session.post("/v1/jobs", data=JOB_BODY, headers=_headers(token)) as response:
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                return
        statuses[str(response.status)] += 1
        if response.status == 202:
            ids.append(json.loads(body)["id"])

    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        start = loop.time()
        tasks = []
        for i in range(n):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one(session)))
        await asyncio.gather(*tasks)
    return ids, statuses


def count_jobs(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select count(*) from jobs").fetchone()
    assert row is not None
    return int(row[0])


def wait_stable_count(conn: psycopg.Connection[Any], timeout_s: float = 30.0) -> int:
    """The jobs count once it stops moving (the intake may still be committing its last batches)."""
    deadline = time.monotonic() + timeout_s
    previous = -1
    while True:
        current = count_jobs(conn)
        if current == previous:
            return current
        if time.monotonic() > deadline:
            raise BenchError(f"jobs count still moving after {timeout_s:.0f} s ({previous} -> {current})")
        previous = current
        time.sleep(0.5)


def reset_stores() -> None:
    if BENCH_DB != "satworks_bench":  # the one database this harness may drop
        raise BenchError(f"refusing to drop database {BENCH_DB!r}")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
    client = redis.Redis.from_url(REDIS_URL)
    if client.connection_pool.connection_kwargs.get("db") != REDIS_DB:
        raise BenchError("refusing to flush a Redis database other than 14")
    client.flushdb()
    client.close()


def cpu_busy(sample_s: float = 1.0) -> float:
    """Share of all cores busy over ``sample_s`` (from /proc/stat), to flag a machine that is not idle."""

    def totals() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    total0, idle0 = totals()
    time.sleep(sample_s)
    total1, idle1 = totals()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return "none (no commits yet)"
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() + (" (dirty tree)" if dirty.stdout.strip() else "")


# --- phases -------------------------------------------------------------------------------------------


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
    satworks = executable("satworks")
    done = subprocess.run([satworks, "migrate"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"satworks migrate failed:\n{done.stdout}\n{done.stderr}")
    done = subprocess.run(
        [satworks, "apps", "create", "bench", "--quiet"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"satworks apps create failed:\n{done.stdout}\n{done.stderr}")
    token = done.stdout.strip().splitlines()[-1].strip()

    procs.start("satworks_web", [satworks, "web"], env)
    base = f"http://127.0.0.1:{env['SATWORKS_HTTP_PORT']}"
    wait_http_ok(procs, "satworks_web", f"{base}/health")
    warmed = warm_up(base, token, cfg.warmup_requests)
    results.intake = wrk = run_wrk(cfg, "satworks_intake", f"{base}/v1/jobs", token, procs.log_dir)
    procs.check_alive("satworks_web")

    with psycopg.connect(PG_BENCH_URL, autocommit=True) as conn, redis.Redis.from_url(REDIS_URL) as broker:
        rows = wait_stable_count(conn)
        expected = warmed + wrk.ok
        messages = int(broker.hlen(f"{SATWORKS_QUEUE}.msgs"))
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
            messages = int(broker.hlen(f"{SATWORKS_QUEUE}.msgs"))
            if messages != rows:
                raise BenchError(f"broker holds {messages} messages for {rows} jobs rows after top-up")
    return base, token, rows


def phase_raw(cfg: Config, procs: Processes, results: Results, n: int) -> None:
    os.environ["BENCH_RAW_REDIS_URL"] = REDIS_URL
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench import raw_dramatiq

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
    with redis.Redis.from_url(REDIS_URL) as broker:
        messages = int(broker.hlen(f"{SATWORKS_QUEUE}.msgs"))
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

        # Enqueue-to-finish with the worker running, at a paced, moderate rate.
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
        results.latency = {
            "jobs": len(ids),
            "rate_per_s": cfg.latency_rate,
            "finish_p50_ms": float(row[0]) * 1e3,
            "finish_p99_ms": float(row[1]) * 1e3,
            "start_p50_ms": float(row[2]) * 1e3,
            "start_p99_ms": float(row[3]) * 1e3,
        }
        log(
            f"satworks latency: created->finished p50 {results.latency['finish_p50_ms']:.1f} ms, "
            f"p99 {results.latency['finish_p99_ms']:.1f} ms; "
            f"created->started p50 {results.latency['start_p50_ms']:.1f} ms"
        )
    procs.stop("satworks_worker")


# --- report -------------------------------------------------------------------------------------------


def report(results: Results) -> str:
    lines = [
        "",
        f"satworks intake & end-to-end bench  {results.started_at}  quick={results.quick}",
        f"machine: {results.machine}   commit: {results.commit}",
        f"before start: {results.idle_check}",
        "",
        f"{'phase':<34}{'count':>9}{'seconds':>9}{'rate/s':>10}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for label, res in (("A bare aiohttp (wrk)", results.bare), ("B satworks intake (wrk)", results.intake)):
        if res is not None:
            lines.append(
                f"{label:<34}{res.requests:>9}{res.seconds:>9.2f}{res.rps:>10,.0f}{res.p50_ms:>9.2f}{res.p99_ms:>9.2f}"
            )
    for label, drain in (
        ("C raw dramatiq no-op", results.raw),
        ("D satworks e2e canary", results.e2e),
    ):
        if drain is not None:
            lines.append(f"{label:<34}{drain.jobs:>9}{drain.seconds:>9.2f}{drain.jobs_per_s:>10,.0f}")
            lines.append(
                f"{'    steady (first job -> last)':<34}{'':>9}{drain.steady_seconds:>9.2f}"
                f"{drain.steady_jobs_per_s:>10,.0f}"
            )
    if results.latency:
        lat = results.latency
        lines.append(
            f"D' enqueue->finish, {lat['jobs']:.0f} jobs paced at {lat['rate_per_s']:.0f}/s, worker running: "
            f"p50 {lat['finish_p50_ms']:.1f} ms, p99 {lat['finish_p99_ms']:.1f} ms "
            f"(enqueue->start p50 {lat['start_p50_ms']:.1f} ms, p99 {lat['start_p99_ms']:.1f} ms)"
        )
    if results.intake_check:
        lines.append(f"intake check: {results.intake_check}")
    lines.append("")
    lines.append("ratios (informational; only comparable within this run):")
    if results.bare and results.intake:
        ratio = results.intake.rps / results.bare.rps
        met = "met" if ratio >= INTAKE_TARGET else "NOT met"
        lines.append(f"  intake / bare aiohttp req/s  = {ratio:6.2f}   target >= {INTAKE_TARGET:.2f}: {met}")
        lines.append(
            f"  intake / bare p50 latency    = {results.intake.p50_ms / results.bare.p50_ms:6.2f}   "
            f"p99 = {results.intake.p99_ms / results.bare.p99_ms:.2f}"
        )
    if results.raw and results.e2e:
        ratio = results.e2e.jobs_per_s / results.raw.jobs_per_s
        met = "met" if ratio >= E2E_TARGET else "NOT met"
        lines.append(f"  e2e / raw dramatiq jobs/s    = {ratio:6.2f}   target >= {E2E_TARGET:.2f}: {met}")
        steady = results.e2e.steady_jobs_per_s / results.raw.steady_jobs_per_s
        lines.append(f"  (steady-state rates: {steady:.2f})")
    for problem in results.problems:
        lines.append(f"  note: {problem}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs, 5000 jobs")
    parser.add_argument("--jobs", type=int, default=None, help="jobs for C and D (default 20000, quick 5000)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--baselines-only", action="store_true", help="only A and C (no satworks needed)")
    args = parser.parse_args()
    cfg = Config.from_args(args)
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
            results.idle_check = f"{busy:.0%} CPU busy before start, load average {os.getloadavg()[0]:.2f}"
            log(f"machine: {results.idle_check}")
            if busy > 0.15:
                results.problems.append(f"machine not idle before the run ({results.idle_check}): figures are noisy")
            reset_stores()
            phase_bare(cfg, procs, results)
            if args.baselines_only:
                phase_raw(cfg, procs, results, cfg.jobs)
            else:
                env = satworks_env(free_port(), free_port())
                base, token, queued = phase_intake(cfg, procs, results, env)
                phase_raw(cfg, procs, results, queued)
                phase_e2e(cfg, procs, results, env, base, token, queued)
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
