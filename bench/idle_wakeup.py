"""Idle wake-up: how long a job sent to an idle platform waits before it starts, per queue.

For each system, ``--samples`` times: ``--quiet-s`` of nothing, then one job per queue (critical,
default, bulk), timed from enqueue to start. Systems, one after the other, each with one worker
process of 8 threads on all three queues:

  raw/redis       plain Dramatiq (bench/wakeup_actors.py), no-op probe: send -> actor start
  raw+wakeup/redis  the same worker and probe on satworks' Redis broker (its idle wake-up alone)
  satworks/redis  ``satworks web`` + ``satworks worker``: POST /v1/jobs canary -> the job's
                  ``started_at - created_at`` (as a user sees it, intake and status writes included)
  baseline/redis  the same satworks from another source tree (``--baseline-src``, e.g. the commit
                  before a change), so before and after are measured in one run
  raw/rabbitmq, satworks/rabbitmq   the same on RabbitMQ, when it is reachable

After the idle samples, ``--hot-samples`` more, each sent 50 ms after the previous ones started, show
the same path back to back (for Dramatiq's polling consumer that is still partly backed off). Then,
for each Redis system, the Redis commands each worker process sends per idle second, read with
MONITOR over ``--idle-window-s`` after a quiet spell (top-level commands, and with the commands run
inside scripts). Prints a table and ratios; exits 1 only on errors or wrong counts.

    .venv/bin/python bench/idle_wakeup.py [--quick] [--private-redis] [--baseline-src DIR] [--json F]

Touches: Postgres database ``satworks_bench_wakeup`` (dropped and recreated), Redis DB 15 (keys of
this run's own namespace and queue prefix only, deleted at the end; ``--private-redis`` runs a
throwaway redis-server instead), RabbitMQ queues of this run's prefix (deleted at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from psycopg import sql

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from bench import wakeup_actors  # noqa: E402

DB_NAME = "satworks_bench_wakeup"
PG = "postgresql://postgres@127.0.0.1:5432"
REDIS_DB = 15
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
QUEUES = wakeup_actors.QUEUES
PRIORITY = {"critical": "high", "default": "normal", "bulk": "low"}
TARGET_P50_MS, TARGET_P99_MS = 20.0, 50.0
HOT_QUIET_S = 0.05


class BenchError(RuntimeError):
    """The run is invalid: the harness exits 1."""


@dataclass
class SystemResult:
    name: str
    lags_ms: dict[str, list[float]] = field(default_factory=dict)
    hot_lags_ms: dict[str, list[float]] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)

    def stats(self, queue: str | None = None, *, hot: bool = False) -> dict[str, float]:
        lags = self.hot_lags_ms if hot else self.lags_ms
        values = sorted(v for q, vs in lags.items() if queue in (None, q) for v in vs)
        if not values:
            return {}
        return {
            "n": len(values),
            "p50": statistics.median(values),
            "p90": _percentile(values, 0.9),
            "p99": _percentile(values, 0.99),
            "max": values[-1],
        }


def _percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ordered list (with 50 samples, p99 is the largest but one)."""
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


# --- processes ----------------------------------------------------------------------------------------


class Processes:
    """Each process in its own session; stopping one ends its whole process group."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running[name] = proc
        return proc

    def check(self, name: str) -> None:
        proc = self.running[name]
        if proc.poll() is not None:
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-30:]
            raise BenchError(f"{name} exited with {proc.returncode}:\n" + "\n".join(tail))

    def stop(self, name: str) -> None:
        proc = self.running.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def poll(check: Callable[[], Any], *, deadline_s: float, what: str, every_s: float = 0.02) -> Any:
    """``check()`` until it returns something other than ``None`` or ``False``."""
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got is not None and got is not False:
            return got
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def group_ports(pgid: int) -> dict[int, int]:
    """``{local TCP port: pid}`` of the sockets of every process in process group ``pgid`` (Linux)."""
    inodes: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = int(pid)
        except (OSError, ValueError, IndexError):  # the process or fd went away meanwhile
            continue
    ports: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports[int(fields[1].rsplit(":", 1)[1], 16)] = inodes[fields[9]]
    return ports


def idle_commands(redis_url: str, pgid: int, window_s: float) -> dict[str, float]:
    """Commands per second per worker process of group ``pgid`` on ``redis_url``'s DB, by MONITOR."""
    client = redis.Redis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    top = inner = 0
    pending_inner = 0
    pids: set[int] = set()
    names: Counter[str] = Counter()
    with client.monitor() as monitor:  # type: ignore[no-untyped-call]
        ports = group_ports(pgid)  # after MONITOR is on: connections made before the window count
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline:
            if not monitor.connection.can_read(timeout=0.2):
                continue
            line = monitor.connection.read_response()
            text = line.decode(errors="replace") if isinstance(line, bytes) else str(line)
            head = text[text.find("[") + 1 : text.find("]")]
            line_db, _, addr = head.partition(" ")
            if line_db != str(db):
                continue
            if addr == "lua":  # commands a script runs are shown before the script's own call
                pending_inner += 1
                continue
            pid = ports.get(int(addr.rsplit(":", 1)[1])) if ":" in addr else None
            if pid is not None:
                top += 1
                inner += pending_inner
                pids.add(pid)
                names[text[text.find("]") + 1 :].split('"')[1].lower()] += 1
            pending_inner = 0
    client.close()
    processes = max(1, len(pids))
    return {
        "processes": processes,
        "top_level_per_s": top / window_s / processes,
        "with_script_commands_per_s": (top + inner) / window_s / processes,
        **{f"{name}_per_s": count / window_s / processes for name, count in sorted(names.items())},
    }


# --- systems ------------------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    procs: Processes
    redis_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    results: list[SystemResult] = field(default_factory=list)


def measure(run: Run, result: SystemResult, send: Callable[[str], Callable[[], float | None]], name: str) -> None:
    """``send(queue)`` enqueues one job and returns a reader of its lag (seconds, ``None`` until known)."""
    for queue in QUEUES:  # warm-up: every queue works before anything is timed
        poll(send(queue), deadline_s=60, what=f"{result.name} warm-up job on {queue}", every_s=0.05)
    for lags, samples, quiet_s in (
        (result.lags_ms, run.args.samples, run.args.quiet_s),
        (result.hot_lags_ms, run.args.hot_samples, HOT_QUIET_S),
    ):
        lags.update({q: [] for q in QUEUES})
        for i in range(samples):
            time.sleep(quiet_s)
            run.procs.check(name)
            readers = {queue: send(queue) for queue in QUEUES}
            for queue, read in readers.items():
                lag = poll(read, deadline_s=60, what=f"{result.name} sample {i} on {queue}", every_s=0.01)
                lags[queue].append(lag * 1000)
    idle, hot = result.stats(), result.stats(hot=True)
    if idle:
        log(
            f"{result.name}: idle p50 {idle['p50']:.1f} ms, p99 {idle['p99']:.1f} ms over {idle['n']:.0f} samples; "
            f"back to back p50 {hot.get('p50', 0):.1f} ms"
        )


def run_raw(run: Run, broker_url: str, label: str, *, satworks_broker: bool = False) -> None:
    namespace = f"wkraw{run.run_id}{len(run.results)}"
    prefix = namespace + "_"
    broker, probes = wakeup_actors.build(broker_url, namespace, prefix, run.redis_url, satworks_broker=satworks_broker)
    for probe in probes.values():
        broker.declare_queue(probe.queue_name)
    results = redis.Redis.from_url(run.redis_url)
    key = wakeup_actors.results_key(namespace)
    env = {
        **os.environ,
        "BENCH_WAKEUP_BROKER_URL": broker_url,
        "BENCH_WAKEUP_NAMESPACE": namespace,
        "BENCH_WAKEUP_PREFIX": prefix,
        "BENCH_WAKEUP_RESULTS_URL": run.redis_url,
        "BENCH_WAKEUP_SATWORKS_BROKER": "1" if satworks_broker else "0",
    }
    name = f"raw{'_wakeup' if satworks_broker else ''}_{label}"
    argv = [str(BIN / "dramatiq"), "bench.wakeup_actors", "--processes", "1", "--threads", "8"]
    proc = run.procs.start(name, argv, env)
    result = SystemResult(f"raw{'+wakeup' if satworks_broker else ''}/{label}")

    def send(queue: str) -> Callable[[], float | None]:
        sample = uuid.uuid4().hex
        probes[queue].send(sample, time.time())

        def read() -> float | None:
            value = results.hget(key, sample)
            return float(value) if value is not None else None

        return read

    try:
        measure(run, result, send, name)
        if label == "redis":
            time.sleep(run.args.quiet_s)
            result.idle = idle_commands(run.redis_url, proc.pid, run.args.idle_window_s)
            log(f"{result.name}: idle {result.idle}")
    finally:
        run.procs.stop(name)
        if label == "rabbitmq":
            delete_rabbit_queues(broker, prefix)
        broker.close()
        delete_keys(run.redis_url, f"{namespace}:*")
        results.close()
    run.results.append(result)


def run_satworks(run: Run, broker_url: str | None, label: str, src: Path | None = None) -> None:
    prefix = f"wk{run.run_id}{len(run.results)}_"
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SATWORKS_", "PROMETHEUS_"))}
    env.update(
        SATWORKS_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}",
        SATWORKS_REDIS_URL=run.redis_url,
        SATWORKS_QUEUE_PREFIX=prefix,
        SATWORKS_HTTP_PORT=str(http_port),
        SATWORKS_WORKER_METRICS_PORT=str(free_port()),
        SATWORKS_LOG_LEVEL="WARNING",
    )
    if broker_url:
        env["SATWORKS_BROKER_URL"] = broker_url
    cwd = ROOT
    if src is not None:  # the other tree's package shadows this one (the editable install) in every process
        env["PYTHONPATH"] = str(src)
        cwd = src  # the dramatiq CLI puts its working directory first on sys.path
        check_source(src, env)
    satworks = str(BIN / "satworks")
    recreate_database()  # each system migrates its own: a baseline tree may carry other migrations
    for argv in ([satworks, "migrate"], [satworks, "apps", "create", f"wakeup-{prefix}", "--quiet"]):
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv[1:])} failed:\n{done.stdout}\n{done.stderr}")
    token = done.stdout.strip().splitlines()[-1]
    name = f"satworks_{label}{'_baseline' if src else ''}"
    run.procs.start(name + "_web", [satworks, "web"], env, cwd)
    worker = run.procs.start(
        name, [satworks, "worker", "--queues", ",".join(QUEUES), "--processes", "1", "--threads", "8"], env, cwd
    )
    base = f"http://127.0.0.1:{http_port}"
    result = SystemResult(f"{'baseline' if src else 'satworks'}/{label}")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        poll(lambda: _ok(f"{base}/health"), deadline_s=60, what="satworks web", every_s=0.2)
        with httpx.Client(base_url=base, timeout=30) as http, psycopg.connect(f"{PG}/{DB_NAME}") as db:
            db.autocommit = True

            def send(queue: str) -> Callable[[], float | None]:
                response = http.post(
                    "/v1/jobs", json={"type": "canary", "payload": {}, "priority": PRIORITY[queue]}, headers=headers
                )
                if response.status_code != 202:
                    raise BenchError(f"POST /v1/jobs answered {response.status_code}: {response.text[:300]}")
                job_id = response.json()["id"]

                def read() -> float | None:
                    row = db.execute(
                        "select extract(epoch from started_at - created_at), queue from jobs"
                        " where id = %s and started_at is not null",
                        (job_id,),
                    ).fetchone()
                    if row is not None and row[1] != prefix + queue:
                        raise BenchError(f"job {job_id} ran on {row[1]}, not {queue}")
                    return float(row[0]) if row is not None else None

                return read

            measure(run, result, send, name)
        if broker_url is None:
            time.sleep(run.args.quiet_s)
            result.idle = idle_commands(run.redis_url, worker.pid, run.args.idle_window_s)
            log(f"{result.name}: idle {result.idle}")
    finally:
        run.procs.stop(name)
        run.procs.stop(name + "_web")
        if broker_url:
            from satworks.broker.build import build_broker
            from satworks.settings import Settings

            rabbit = build_broker(Settings(broker_url=broker_url, queue_prefix=prefix, redis_url=run.redis_url))
            delete_rabbit_queues(rabbit, prefix)
            rabbit.close()
        delete_keys(run.redis_url, f"satworks:{prefix}*", f"satworks:__acks__.*.{prefix}*")
    run.results.append(result)


def check_source(src: Path, env: dict[str, str]) -> None:
    """Refuse a baseline whose processes would import this tree's satworks instead of ``src``'s."""
    for argv in (
        [sys.executable, "-c", "import satworks; print(satworks.__file__)"],  # as ``satworks web`` does
        [sys.executable, "-c", "import sys; sys.path.insert(0, '.'); import satworks; print(satworks.__file__)"],
    ):
        done = subprocess.run(argv, env=env, cwd=src, capture_output=True, text=True, timeout=60)
        if not done.stdout.strip().startswith(str(src)):
            raise BenchError(f"the baseline imports {done.stdout.strip() or done.stderr.strip()}, not {src}")


def _ok(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def delete_keys(redis_url: str, *patterns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for pattern in patterns:
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def delete_rabbit_queues(broker: Any, prefix: str) -> None:
    for queue in QUEUES:
        for suffix in ("", ".DQ", ".XQ"):
            with contextlib.suppress(Exception):  # never declared on this broker: nothing to delete
                broker.channel.queue_delete(prefix + queue + suffix)


@contextlib.contextmanager
def redis_server(private: bool, log_dir: Path) -> Iterator[str]:
    """The Redis URL to use: DB 15 of the local server, or of a throwaway ``redis-server``."""
    if not private:
        yield f"redis://127.0.0.1:6379/{REDIS_DB}"
        return
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(log_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        poll(lambda: reachable("127.0.0.1", port), deadline_s=10, what="the private redis-server", every_s=0.05)
        yield f"redis://127.0.0.1:{port}/{REDIS_DB}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def recreate_database() -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


# --- report -------------------------------------------------------------------------------------------


def report(results: list[SystemResult]) -> str:
    lines = [f"{'system':<20}{'queue':<10}{'n':>4}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    for result in results:
        for queue in (*QUEUES, None):
            s = result.stats(queue)
            if s:
                lines.append(
                    f"{result.name:<20}{queue or 'all':<10}{s['n']:>4.0f}{s['p50']:>9.1f}{s['p90']:>9.1f}"
                    f"{s['p99']:>9.1f}{s['max']:>9.1f}"
                )
    lines.append("")
    lines.append(f"back to back (sent {HOT_QUIET_S * 1000:.0f} ms after the previous ones started, all queues):")
    for result in results:
        s = result.stats(hot=True)
        if s:
            lines.append(f"  {result.name:<20} n {s['n']:.0f}  p50 {s['p50']:.1f} ms  p99 {s['p99']:.1f} ms")
    lines.append("")
    lines.append(f"targets: idle wake-up p50 < {TARGET_P50_MS:.0f} ms, p99 < {TARGET_P99_MS:.0f} ms (every queue)")
    for result in results:
        worst = [result.stats(q) for q in QUEUES]
        if not all(worst):
            continue
        met = all(s["p50"] < TARGET_P50_MS and s["p99"] < TARGET_P99_MS for s in worst)
        lines.append(f"  {result.name:<20} {'met' if met else 'NOT met'}")
    by_name = {r.name: r for r in results}
    lines.append("ratios (p50, p99; only comparable within this run):")
    for a, b in (
        ("raw+wakeup/redis", "raw/redis"),
        ("satworks/redis", "raw/redis"),
        ("satworks/redis", "raw+wakeup/redis"),
        ("baseline/redis", "raw/redis"),
        ("satworks/redis", "baseline/redis"),
        ("satworks/rabbitmq", "raw/rabbitmq"),
    ):
        if a in by_name and b in by_name and by_name[a].stats() and by_name[b].stats():
            sa, sb = by_name[a].stats(), by_name[b].stats()
            lines.append(f"  {a} / {b}: {sa['p50'] / sb['p50']:.2f}, {sa['p99'] / sb['p99']:.2f}")
    lines.append("idle Redis commands per second per worker process (top-level; with commands inside scripts):")
    for result in results:
        if result.idle:
            lines.append(
                f"  {result.name:<20} {result.idle['top_level_per_s']:6.2f}; "
                f"{result.idle['with_script_commands_per_s']:6.2f}  ({result.idle['processes']:.0f} process; "
                + ", ".join(
                    f"{k.removesuffix('_per_s')} {v:.2f}"
                    for k, v in result.idle.items()
                    if k[0].islower() and k.endswith("_per_s") and not k.startswith(("top_", "with_"))
                )
                + ")"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, help="samples per queue and system (default 50; quick 15)")
    parser.add_argument("--quiet-s", type=float, help="quiet before each sample (default 2 s; quick 1.5 s)")
    parser.add_argument("--idle-window-s", type=float, help="MONITOR window (default 10 s; quick 5 s)")
    parser.add_argument("--hot-samples", type=int, help="samples 50 ms apart after the idle ones (default 20)")
    parser.add_argument("--quick", action="store_true", help="15 samples, 1.5 s quiet, 5 s window")
    parser.add_argument("--private-redis", action="store_true", help="a throwaway redis-server, not DB 15 of :6379")
    parser.add_argument("--baseline-src", type=Path, help="a satworks source tree to measure as 'baseline'")
    parser.add_argument("--no-rabbitmq", action="store_true")
    parser.add_argument("--systems", help="only these, e.g. raw/redis,satworks/redis (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    quick = {"samples": 15, "quiet_s": 1.5, "idle_window_s": 5.0, "hot_samples": 10}
    full = {"samples": 50, "quiet_s": 2.0, "idle_window_s": 10.0, "hot_samples": 20}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.baseline_src is not None and not (args.baseline_src / "satworks" / "__init__.py").exists():
        parser.error(f"{args.baseline_src} holds no satworks package")
    log_dir = Path(tempfile.mkdtemp(prefix="satworks-wakeup-"))
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    log(f"logs in {log_dir}; load average {os.getloadavg()[0]:.2f}")
    procs = Processes(log_dir)
    run: Run | None = None
    failed = False
    try:
        with redis_server(args.private_redis, log_dir) as redis_url:
            run = Run(args, procs, redis_url)
            recreate_database()
            rabbit = not args.no_rabbitmq and reachable("127.0.0.1", 5672)
            if not rabbit and not args.no_rabbitmq:
                log("RabbitMQ is not reachable on 127.0.0.1:5672: its systems are skipped")
            systems: list[tuple[str, Callable[[], None]]] = [
                ("raw/redis", lambda: run_raw(run, redis_url, "redis")),
                ("raw+wakeup/redis", lambda: run_raw(run, redis_url, "redis", satworks_broker=True)),
                ("satworks/redis", lambda: run_satworks(run, None, "redis")),
            ]
            if args.baseline_src is not None:
                src = args.baseline_src.resolve()
                systems.append(("baseline/redis", lambda: run_satworks(run, None, "redis", src=src)))
            if rabbit:
                systems.append(("raw/rabbitmq", lambda: run_raw(run, AMQP_URL, "rabbitmq")))
                systems.append(("satworks/rabbitmq", lambda: run_satworks(run, AMQP_URL, "rabbitmq")))
            wanted = set(args.systems.split(",")) if args.systems else {name for name, _ in systems}
            for name, measure_system in systems:
                if name in wanted:
                    measure_system()
    except BenchError as exc:
        failed = True
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
    results = run.results if run is not None else []
    print(f"\nidle wake-up bench  {started}  commit {git_commit()}  {platform.node()}, {os.cpu_count()} cores")
    print(
        f"redis: {'private redis-server' if args.private_redis else 'local server DB 15'}; "
        f"{args.samples} samples per queue after {args.quiet_s:.1f} s quiet; "
        f"baseline: {args.baseline_src or '-'}; load average now {os.getloadavg()[0]:.2f}\n"
    )
    print(report(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
