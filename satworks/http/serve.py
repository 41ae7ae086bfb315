"""``satworks web``: the intake app in one process, or in N processes sharing one port, each served by
``satworks.http.server`` (header and body timeouts, connection cap).

One process is CPU-bound in Python long before Postgres or Redis are (see ``bench/RESULTS.md``), so
``--processes N`` forks N copies that each bind the port with ``SO_REUSEPORT`` (aiohttp's
``reuse_port``): the kernel spreads new connections over them, nothing is proxied. Each process has
its own database pool, Redis clients and intake batcher; their Prometheus metrics go to a shared
multiprocess directory, so ``/metrics`` on any of them reports the sums (and
``satworks_http_processes`` the live processes). The parent only starts, replaces and stops them.

After start-up every process runs ``gc.freeze()``: the objects alive then (modules, app, pools) are
never scanned again, so a full collection no longer walks them and stops setting the p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from satworks.settings import Settings

log = logging.getLogger(__name__)

MIN_UPTIME_S = 5.0
"""A process that exits sooner than this after its start is not replaced: it would only fail again
(port taken, bad settings); the whole command exits instead."""

STOP_GRACE_S = 30.0
"""How long the parent waits for its processes to finish their requests after SIGTERM."""

PARENT_CHECK_S = 1.0
"""How often a serving process checks that its parent still runs."""


def serve(settings: Settings, processes: int) -> int:
    """Run the intake API until SIGTERM/SIGINT; returns the exit code."""
    if processes == 1:
        _run_app(settings, reuse_port=False, metrics_dir=None)
        return 0
    metrics_dir = Path(tempfile.gettempdir()) / f"satworks-web-metrics-{settings.http_port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # Before prometheus_client is imported: its value class is chosen at import time.
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the multiprocess directory was set")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    import satworks.http.app  # noqa: F401 - imported once here, shared by the forked processes

    return _Supervisor(settings, processes, metrics_dir).run()


def _run_app(settings: Settings, *, reuse_port: bool, metrics_dir: Path | None) -> None:
    from satworks.http import server
    from satworks.http.app import create_app

    app = create_app(settings, multiprocess_dir=None if metrics_dir is None else str(metrics_dir))
    app.on_startup.append(_freeze_gc)  # after the resources opened by cleanup_ctx
    if reuse_port:
        app.cleanup_ctx.append(_exit_with_parent)
    server.serve(settings, app, reuse_port=reuse_port)  # with the connection limits of ``http.server``


async def _freeze_gc(app: object) -> None:
    gc.collect()
    gc.freeze()


async def _exit_with_parent(app: object) -> AsyncIterator[None]:
    """A serving process whose parent is gone (killed) stops itself: left running, it would keep the
    port and answer beside a restarted ``satworks web``, with old code and settings."""
    parent = os.getppid()

    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_S)
        log.warning("web supervisor gone: stopping", extra={"action": "web_parent_gone"})
        os.kill(os.getpid(), signal.SIGTERM)  # aiohttp's graceful shutdown

    task = asyncio.create_task(watch())
    yield
    task.cancel()


class _Supervisor:
    """Forks the serving processes, replaces one that dies, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, processes: int, metrics_dir: Path) -> None:
        self.settings = settings
        self.processes = processes
        self.metrics_dir = metrics_dir
        self.context = multiprocessing.get_context("fork")  # nothing is open yet: only modules are shared
        self.running: dict[int, tuple[BaseProcess, float]] = {}  # sentinel -> (process, started at)
        self.stopping = False

    def run(self) -> int:
        for _ in range(self.processes):
            self._start()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()

    def _watch(self) -> int:
        while self.running:
            for sentinel in wait(list(self.running), timeout=1.0):
                assert isinstance(sentinel, int)
                process, started_at = self.running.pop(sentinel)
                process.join()
                self._forget(process)
                if self.stopping:
                    continue
                uptime = time.monotonic() - started_at
                log.warning(
                    "web process exited",
                    extra={"action": "web_process_exited", "exit_code": process.exitcode, "uptime_s": round(uptime, 1)},
                )
                if uptime < MIN_UPTIME_S:
                    self.stopping = True
                    return 1
                self._start()
        return 0

    def _start(self) -> None:
        process = self.context.Process(target=self._child, name="satworks-web", daemon=False)
        process.start()
        self.running[process.sentinel] = (process, time.monotonic())

    def _child(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)  # aiohttp installs its own once the loop runs
        _run_app(self.settings, reuse_port=True, metrics_dir=self.metrics_dir)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for process, _ in self.running.values():
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _stop_all(self) -> None:
        self._stop(signal.SIGTERM, None)
        deadline = time.monotonic() + STOP_GRACE_S
        for process, _ in list(self.running.values()):
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            self._forget(process)
        self.running.clear()

    def _forget(self, process: BaseProcess) -> None:
        """Drop a dead process's live gauges (``satworks_http_processes``) from the shared metrics."""
        from prometheus_client import multiprocess

        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
