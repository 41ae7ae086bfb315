"""Helpers shared by the tests: polling with a deadline, services that must run, worker processes,
direct database reads."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import psycopg
import pytest
import redis
from pydantic import SecretStr

from satworks.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def documented_verify() -> Callable[..., bool]:
    """The ``verify`` function exactly as docs/webhooks.md shows it, held to the 10 lines it promises."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    block = re.search(r"<!-- verify-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert block is not None, "docs/webhooks.md lost its verify example"
    assert len(block.group(1).strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # the documentation's own code, from this repository
    verify: Callable[..., bool] = namespace["verify"]
    return verify


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout_s: float = 20, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)  # poll interval, bounded by the deadline
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}; last: {last!r}")


def wait_until(check: Callable[[], T | None], *, timeout_s: float = 20, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)  # poll interval, bounded by the deadline
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


def in_ci() -> bool:
    """``CI=true``: every service the suite uses must run, so a missing one fails the run."""
    return os.environ.get("CI") == "true"


def require_service(name: str, check: Callable[[], object]) -> None:
    """Skip the calling test when service ``name`` cannot be used; under ``CI=true``, fail it instead.

    ``check`` tells whether the service answers: it raises, or returns ``False``, when it does not.
    """
    try:
        usable = check() is not False
        problem = "it did not answer"
    except Exception as exc:
        usable, problem = False, f"{type(exc).__name__}: {exc}"
    if usable:
        return
    reason = f"{name} is not reachable ({problem})"
    if in_ci():
        pytest.fail(f"{reason}; CI=true expects it to run", pytrace=False)
    pytest.skip(reason)


def tcp_check(url: str, *, default_port: int, timeout_s: float = 1.0) -> Callable[[], None]:
    """A ``check`` for ``require_service``: something accepts TCP connections at ``url``'s host and port."""
    parsed = urlparse(url)

    def check() -> None:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=timeout_s):
            pass

    return check


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SATWORKS_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = "[" + ",".join(f'"{v.get_secret_value() if isinstance(v, SecretStr) else v}"' for v in value) + "]"
        env[f"SATWORKS_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


class WorkerProcess:
    """``satworks worker`` in its own process group, so a test can SIGKILL all of it."""

    def __init__(
        self,
        settings: Settings,
        *,
        queues: str = "critical,default,bulk",
        threads: int = 4,
        supervise: bool = False,
        log: Path | None = None,
    ) -> None:
        """``log``: a file for the pool's stderr (else it is discarded)."""
        self.settings = settings
        self.log = log
        self.args = [
            sys.executable,
            "-m",
            "satworks.cli",
            "worker",
            "--queues",
            queues,
            "--processes",
            "1",
            "--threads",
            str(threads),
        ]
        if supervise:
            self.args.append("--supervise")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(
            self.args,
            env=settings_env(self.settings),
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if self.log is None else self.log.open("ab"),
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def db_dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://")


def job_row(settings: Settings, job_id: str) -> dict[str, Any] | None:
    with psycopg.connect(db_dsn(settings)) as conn:
        cur = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c.name for c in cur.description or ()], row, strict=True))


def scalar(settings: Settings, sql: str, *params: Any) -> Any:
    with psycopg.connect(db_dsn(settings)) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def handed_to_broker(settings: Settings, job_id: str) -> bool:
    """Whether the intake recorded the job's message as in the broker: its ``jobs_unenqueued`` marker is gone."""
    return scalar(settings, "SELECT count(*) FROM jobs_unenqueued WHERE id = %s", job_id) == 0


def message_in_broker(settings: Settings, job_id: str) -> bool:
    """Whether a message for ``job_id`` waits in this test process's Redis queues (ready or delayed)."""
    client = redis.Redis.from_url(settings.effective_broker_url)
    try:
        for queue in ("critical", "default", "bulk"):
            for suffix in (".msgs", ".DQ.msgs"):
                values = client.hvals(f"satworks:{settings.queue_prefix}{queue}{suffix}")
                if any(job_id.encode() in value for value in values):
                    return True
        return False
    finally:
        client.close()


def live_children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc; not zombies, which a parent that was
    exec'd again, as Dramatiq on ``SIGHUP``, never reaps)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def free_port() -> int:
    """A port nothing listens on, picked below the kernel's ephemeral range. A port the kernel hands out
    for ``bind(0)`` comes from that range, which every outgoing connection of every test process also
    draws from: between our pick and the server's bind, one of them could take it ("Address already in
    use"). Below the range only another test's pick can collide, and the picks are spread at random."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(10_000, low - 1) if low > 11_000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port found")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


class WebProcess:
    """``satworks web`` in its own process (aiohttp's production server, not the test server), its
    stderr kept in ``log``, so a test sees what an operator would."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings.model_copy(update={"http_port": free_port()})
        self.url = f"http://127.0.0.1:{self.settings.http_port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WebProcess:
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "satworks.cli", "web"],
                env=settings_env(self.settings),
                cwd=ROOT,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_until(self._answers, timeout_s=30, what=f"satworks web to answer /health (log: {self.log})")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"satworks web exited: {self.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.settings.http_port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return sock.recv(12).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def log_lines(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
