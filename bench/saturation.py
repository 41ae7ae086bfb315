"""What saturates first while a drain runs: the CPU each kind of process used, and what Postgres did.

CPU comes from /proc (psutil is not needed): the user + system ticks of every process at the start and
at the end of the window, classified as the watched processes (the worker pools during a drain, the
web process during intake; by process group), Postgres (the backends of
the bench database apart from everything else Postgres runs: other databases, WAL writer,
checkpointer), redis-server, RabbitMQ (beam.smp), this bench process, and everything else. A process
started inside the window counts from zero; one that ended inside it is missed (the pools are
measured before they are stopped). The figures are in cores: 1.0 is one core busy all the window.

Postgres: commits and row changes of the bench database (pg_stat_database), WAL syncs
(pg_stat_wal, whole server), and what the bench database's backends were doing, sampled every
``interval_s`` from pg_stat_activity: running on CPU, waiting on an event (``Lock:tuple`` would be a
hot row, ``IO:WALSync`` the commit flush, ``LWLock:*`` contention inside Postgres) or idle, waiting
for their client. Redis: commands per second (INFO, whole server).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.harness import PG_ADMIN_URL

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Proc:
    comm: str
    pgid: int
    ticks: int
    started: int  # clock ticks after boot: tells a reused pid apart (a name may change, e.g. kworkers')


def _processes() -> dict[int, _Proc]:
    found: dict[int, _Proc] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        found[int(stat.parent.name)] = _Proc(comm, int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[19]))
    return found


def _machine() -> tuple[int, int]:
    """(all ticks, idle ticks) of every core so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return sum(values), values[3] + values[4]


@dataclass
class Watch:
    """``with Watch(db, pgids, redis_url):`` around a drain; ``usage`` afterwards (the caller may add
    ``jobs``: how many finished inside the window, for the CPU per job)."""

    database: str
    pgids: list[int]  # the process groups watched: worker pools, or the web process
    redis_url: str
    interval_s: float = 0.05
    ignore_backends: set[int] = field(default_factory=set)  # the bench's own connections (its polls)
    usage: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _states: Counter[str] = field(default_factory=Counter)
    _ticks: int = 0
    _backends: set[int] = field(default_factory=set)
    _connections_max: int = 0

    def __enter__(self) -> Watch:
        self._pg = psycopg.connect(PG_ADMIN_URL, autocommit=True)
        self._redis = redis.Redis.from_url(self.redis_url)
        self._db0, self._wal0, self._cmds0 = self._pg_db(), self._pg_wal(), self._redis_commands()
        self._procs0, self._machine0, self._t0 = _processes(), _machine(), time.monotonic()
        self._thread = threading.Thread(target=self._sample, name="saturation", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.monotonic() - self._t0
        procs1, machine1 = _processes(), _machine()
        self._stop.set()
        self._thread.join(timeout=5)
        db1, wal1, cmds1 = self._pg_db(), self._pg_wal(), self._redis_commands()
        self._pg.close()
        self._redis.close()
        total, idle = (b - a for a, b in zip(self._machine0, machine1, strict=True))
        self.usage = {
            "seconds": round(seconds, 2),
            "machine_busy": round(1 - idle / max(total, 1), 3),
            **self._cores(procs1, seconds),
            "pg_commits_per_s": round((db1[0] - self._db0[0]) / seconds),
            "pg_rows_written_per_s": round((db1[1] - self._db0[1]) / seconds),
            "pg_wal_syncs_per_s": round((wal1 - self._wal0) / seconds),
            "pg_backends_busy": round(sum(n for s, n in self._states.items() if s != "idle") / max(self._ticks, 1), 2),
            "pg_connections_max": self._connections_max,
            "pg_states": {s: round(n / max(self._ticks, 1), 2) for s, n in self._states.most_common()},
            "redis_commands_per_s": round((cmds1 - self._cmds0) / seconds),
        }

    def _cores(self, procs1: dict[int, _Proc], seconds: float) -> dict[str, Any]:
        cores: Counter[str] = Counter()
        watched: dict[int, float] = {}
        for pid, proc in procs1.items():
            before = self._procs0.get(pid)
            used = (proc.ticks - (before.ticks if before and before.started == proc.started else 0)) / _TICK / seconds
            if proc.pgid in self.pgids:
                kind = "watched"
                watched[pid] = used
            elif proc.comm == "postgres":
                kind = "postgres_bench_db" if pid in self._backends else "postgres_other"
            elif proc.comm == "redis-server":
                kind = "redis"
            elif proc.comm == "beam.smp":
                kind = "rabbitmq"
            elif pid == os.getpid():
                kind = "bench"
            else:
                kind = "other"
            cores[kind] += used
        return {
            "cores": {k: round(cores[k], 2) for k in KINDS},
            "watched_processes": sum(1 for v in watched.values() if v > 0.02),
            "busiest_process": round(max(watched.values(), default=0.0), 2),
        }

    def _sample(self) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            while not self._stop.wait(self.interval_s):
                rows = conn.execute(
                    "select pid, state, wait_event_type, wait_event from pg_stat_activity"
                    " where datname = %s and backend_type = 'client backend'",
                    (self.database,),
                ).fetchall()
                self._ticks += 1
                self._connections_max = max(self._connections_max, sum(r[0] not in self.ignore_backends for r in rows))
                for pid, state, wait_type, wait in rows:
                    self._backends.add(pid)
                    if pid in self.ignore_backends:
                        continue
                    if state == "active":
                        self._states[f"{wait_type}:{wait}" if wait_type else "CPU"] += 1
                    else:
                        self._states["idle" if state == "idle" else str(state)] += 1

    def _pg_db(self) -> tuple[int, int]:
        row = self._pg.execute(
            "select xact_commit, tup_inserted + tup_updated + tup_deleted from pg_stat_database where datname = %s",
            (self.database,),
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def _pg_wal(self) -> int:
        row = self._pg.execute("select wal_sync from pg_stat_wal").fetchone()
        return int(row[0]) if row else 0

    def _redis_commands(self) -> int:
        return int(self._redis.info("stats")["total_commands_processed"])


KINDS = ("watched", "postgres_bench_db", "postgres_other", "redis", "rabbitmq", "bench", "other")


def wait_groups(states: dict[str, float]) -> dict[str, float]:
    """Backend states grouped by what they mean: a hot row (``Lock:*``: row, tuple, transaction id),
    the commit's WAL flush (``IO:WAL*``, ``LWLock:WALWrite``), other contention inside Postgres (other
    ``LWLock:*``), running (``CPU``), or waiting for the client (``idle``, ``idle in transaction``)."""
    groups: Counter[str] = Counter()
    for state, n in states.items():
        if state.startswith("Lock:"):
            groups["row/object locks"] += n
        elif state.startswith("IO:WAL") or state == "LWLock:WALWrite":
            groups["WAL flush"] += n
        elif state.startswith("LWLock:"):
            groups["other LWLocks"] += n
        elif state == "CPU":
            groups["on CPU"] += n
        elif state.startswith(("idle", "Client:")):
            groups["waiting for client"] += n
        else:
            groups["other waits"] += n
    return dict(groups)


def verdict(usage: dict[str, Any], cores: int | None = None) -> str:
    """One line naming what ran out first in this window, from the figures alone."""
    cores = cores or os.cpu_count() or 1
    used = usage["cores"]
    top = max(used, key=used.get)
    parts = [f"machine {usage['machine_busy']:.0%} busy; most CPU: {top} {used[top]:.2f} of {cores} cores"]
    if usage["busiest_process"] >= 0.9:
        parts.append(f"a watched process at {usage['busiest_process']:.2f} core (one Python process's limit)")
    groups = wait_groups(usage["pg_states"])
    busy = {k: v for k, v in groups.items() if k != "waiting for client" and v >= 0.05}
    if busy:
        parts.append("Postgres backends busy: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(busy.items())))
    return "; ".join(parts)
