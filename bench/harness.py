"""What every bench script needs: processes in their own sessions, wrk, the bench database and Redis
DB, satworks' CLI and environment, an idle-machine check and the table rows.

Bench scripts run as ``.venv/bin/python bench/<script>.py``; each puts the repository root on
``sys.path`` first, so ``bench`` is importable as a package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import aiohttp
import httpx
import pika
import pika.exceptions
import psycopg
import redis
from psycopg import sql

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent

# Overridable so two benches can run side by side without sharing stores (e.g. BENCH_DB=satworks_bench_b
# BENCH_REDIS_DB=12); the defaults are what bench/README.md documents.
BENCH_DB = os.environ.get("BENCH_DB", "satworks_bench")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_ADMIN_URL = f"{PG_SERVER}/postgres"
PG_BENCH_URL = f"{PG_SERVER}/{BENCH_DB}"
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
QUEUE_PREFIX = "bench_"
SATWORKS_NAMESPACE = "satworks"  # the Redis namespace of satworks' broker
SATWORKS_QUEUE = f"{SATWORKS_NAMESPACE}:{QUEUE_PREFIX}default"
JOB_BODY = '{"type":"canary","payload":{}}'

T = TypeVar("T")

POLL_S = 0.02  # Redis polls (cheap)
DB_POLL_S = 0.25  # Postgres polls (a count over the jobs table; kept rare so it does not load the run)


class BenchError(RuntimeError):
    """Something went wrong: the run is invalid and the harness exits non-zero."""


# --- configuration and results of the intake & end-to-end run ------------------------------------------


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
    def create(cls, *, quick: bool, jobs: int | None) -> Config:
        return cls(
            quick=quick,
            wrk_seconds=3 if quick else 10,
            jobs=jobs or (5_000 if quick else 20_000),
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
    # From 10 % to 90 % of the jobs finished: neither start-up nor the last stragglers (scaling figures)
    mid_jobs_per_s: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)  # what each process used meanwhile (bench/saturation.py)
    max_attempts: int = 1  # satworks: the most attempts any job took (canaries need one)


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
    tracked: DrainResult | None = None  # raw Dramatiq with the textbook exact tracking (bench/raw_tracked.py)
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
        with open(self.log_dir / f"{name}.log", "ab") as log_file:
            self._running[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pid(self, name: str) -> int:
        """The leader's pid, which is also its process group's id (each starts its own session)."""
        return self._running[name].pid

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

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group at once, as a crash would."""
        proc = self._running.pop(name, None)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGKILL)
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


def poll(check: Callable[[], T], *, deadline_s: float, what: str, every_s: float = 0.05) -> T:
    """``check()`` until it returns something truthy, which is returned; ``BenchError`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise BenchError(f"{what}: not after {deadline_s:.0f} s")
        time.sleep(every_s)


# --- satworks: environment, CLI, HTTP -----------------------------------------------------------------


def satworks_env(
    *,
    database: str = BENCH_DB,
    pg_server: str = PG_SERVER,
    redis_url: str = REDIS_URL,
    queue_prefix: str = QUEUE_PREFIX,
    **settings: str,
) -> dict[str, str]:
    """This environment without any ``SATWORKS_*``, plus the bench's database, Redis and queue prefix;
    ``settings``: more settings by name, e.g. ``http_port="8081"``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SATWORKS_", "PROMETHEUS_"))}
    server = pg_server.replace("postgresql://", "postgresql+psycopg://")
    env.update(
        SATWORKS_DATABASE_URL=f"{server}/{database}",
        SATWORKS_REDIS_URL=redis_url,
        SATWORKS_QUEUE_PREFIX=queue_prefix,
    )
    env.update({f"SATWORKS_{name.upper()}": value for name, value in settings.items()})
    return env


def satworks_cli(env: dict[str, str], *args: str, timeout_s: float = 120) -> str:
    """Run ``satworks ARGS`` and return its output; ``BenchError`` when it fails."""
    done = subprocess.run(
        [executable("satworks"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise BenchError(f"satworks {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def create_app_key(env: dict[str, str], name: str = "bench") -> str:
    """Migrate the database and create app ``name``; returns its API key."""
    satworks_cli(env, "migrate")
    out = satworks_cli(env, "apps", "create", name, "--quiet", timeout_s=60)
    if not out:
        raise BenchError("satworks apps create printed no key")
    return out.splitlines()[-1].strip()


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


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def warm_up(base_url: str, token: str, n: int) -> int:
    """``n`` sequential requests (connections, caches, JIT-less Python paths); all must be 202."""
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for _ in range(n):
            response = client.post("/v1/jobs", content=JOB_BODY, headers=headers(token))
            statuses[response.status_code] += 1
    if set(statuses) != {202}:
        raise BenchError(f"warm-up against {base_url} got statuses {dict(statuses)}, expected only 202")
    return n


def probe(url: str, token: str) -> str:
    """One request's status and body, to show what kind of errors wrk counted."""
    try:
        response = httpx.post(url, content=JOB_BODY, headers=headers(token), timeout=10.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"{response.status_code} {response.text[:300]}"


async def post_jobs(
    base_url: str, token: str, n: int, *, concurrency: int, rate: float | None = None, body: str = JOB_BODY
) -> tuple[list[str], Counter[str]]:
    """POST ``n`` jobs (canaries unless ``body`` says otherwise; paced at ``rate`` per second if given);
    returns the 202 ids and statuses.

    Uses aiohttp's client: httpx's async client tops out near 300 req/s on this machine, which would
    make the client, not the server, the bottleneck.
    """
    ids: list[str] = []
    statuses: Counter[str] = Counter()
    gate = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession) -> None:
        async with gate:
            try:
                async with session.post("/v1/jobs", data=body, headers=headers(token)) as response:
                    answer = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                return
        statuses[str(response.status)] += 1
        if response.status == 202:
            ids.append(json.loads(answer)["id"])

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


# --- wrk ----------------------------------------------------------------------------------------------


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


# --- stores -------------------------------------------------------------------------------------------


def recreate_database(name: str, *, admin_url: str = PG_ADMIN_URL, create: bool = False) -> None:
    """Drop database ``name`` (and create it empty when ``create``). Only bench databases may be dropped."""
    if not name.startswith("satworks_bench"):
        raise BenchError(f"refusing to drop database {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def compile_package() -> None:
    """Write the bytecode of the satworks package this bench runs (a tree of ``worker_ab.py`` too), as
    installing a wheel does. An editable install leaves it uncompiled, and with PYTHONDONTWRITEBYTECODE
    set (as on the machines these figures come from) every worker process compiled about 120 modules
    as it started, 0.1-0.2 s of a pool's start-up that raw Dramatiq, compiled in site-packages, never paid."""
    import compileall

    import satworks

    if not compileall.compile_dir(Path(satworks.__file__).parent, quiet=1):
        raise BenchError("satworks does not compile")


def reset_stores() -> None:
    """Drop ``BENCH_DB`` (``satworks migrate`` recreates it) and flush Redis DB ``REDIS_DB`` (14)."""
    recreate_database(BENCH_DB)
    client = redis.Redis.from_url(REDIS_URL)
    if client.connection_pool.connection_kwargs.get("db") != REDIS_DB:
        raise BenchError(f"refusing to flush a Redis database other than {REDIS_DB}")
    client.flushdb()
    client.close()


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


def broker_messages(env: dict[str, str] | None = None, queue: str = "default") -> int:
    """Messages in satworks' bench queue ``queue`` of the broker ``env`` names (default: Redis DB
    ``REDIS_DB``). Redis: ready, prefetched or running; RabbitMQ: ready (none is delivered before a
    worker runs)."""
    env = env or {}
    url = env.get("SATWORKS_BROKER_URL") or env.get("SATWORKS_REDIS_URL", REDIS_URL)
    name = env.get("SATWORKS_QUEUE_PREFIX", QUEUE_PREFIX) + queue
    if url.startswith(("amqp://", "amqps://")):
        with contextlib.closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
            try:
                return int(conn.channel().queue_declare(name, passive=True).method.message_count)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:  # never declared: nothing was sent to it
                    return 0
                raise
    with redis.Redis.from_url(url) as client:
        return int(client.hlen(f"{SATWORKS_NAMESPACE}:{name}.msgs"))


def mid_rate(series: list[tuple[float, int]], total: int) -> float:
    """Jobs/s between 10 % and 90 % of ``total`` finished, from ``(time, finished so far)`` samples in
    time order (each job's finish time with its rank, or polls of a counter)."""
    low = next((t, c) for t, c in series if c >= total * 0.1)
    high = next((t, c) for t, c in series if c >= total * 0.9)
    return (high[1] - low[1]) / max(high[0] - low[0], 1e-6)


# --- the machine --------------------------------------------------------------------------------------


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


def machine_speed() -> dict[str, float]:
    """The VM's speed at this moment, recorded with each run so runs in its slow and fast spells can be
    told apart: the best of three round trips between two threads through two locks (what a worker
    process's threads do for every job), in µs, and of three runs of a fixed pure-Python loop, in ms."""

    def round_trip_us(n: int = 5_000) -> float:
        ping, pong = threading.Lock(), threading.Lock()
        ping.acquire()
        pong.acquire()

        def other() -> None:
            for _ in range(n):
                ping.acquire()
                pong.release()

        thread = threading.Thread(target=other)
        thread.start()
        started = time.perf_counter()
        for _ in range(n):
            ping.release()
            pong.acquire()
        thread.join()
        return (time.perf_counter() - started) / n * 1e6

    def loop_ms(n: int = 2_000_000) -> float:
        started, total = time.perf_counter(), 0
        for i in range(n):
            total += i * i
        return (time.perf_counter() - started) * 1e3

    return {"rt_us": min(round_trip_us() for _ in range(3)), "loop_ms": min(loop_ms() for _ in range(3))}


def machine_probe() -> str:
    speed = machine_speed()
    return f"probe: thread round trip {speed['rt_us']:.0f} us, Python loop {speed['loop_ms']:.0f} ms"


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a ``/proc/<pid>/stat`` after the command name (field 3, the state, comes first)."""
    return stat.read_text().rsplit(")", 1)[1].split()


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat)
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


# --- the table ----------------------------------------------------------------------------------------

TABLE_HEADER = f"{'phase':<34}{'count':>9}{'seconds':>9}{'rate/s':>10}{'p50 ms':>9}{'p99 ms':>9}"


def http_row(label: str, res: HttpResult) -> str:
    return f"{label:<34}{res.requests:>9}{res.seconds:>9.2f}{res.rps:>10,.0f}{res.p50_ms:>9.2f}{res.p99_ms:>9.2f}"


def drain_rows(label: str, drain: DrainResult) -> list[str]:
    return [
        f"{label:<34}{drain.jobs:>9}{drain.seconds:>9.2f}{drain.jobs_per_s:>10,.0f}",
        f"{'    steady (first job -> last)':<34}{'':>9}{drain.steady_seconds:>9.2f}{drain.steady_jobs_per_s:>10,.0f}",
    ]


def ratio_line(label: str, ratio: float, target: float) -> str:
    met = "met" if ratio >= target else "NOT met"
    return f"  {label:<28} = {ratio:6.2f}   target >= {target:.2f}: {met}"
