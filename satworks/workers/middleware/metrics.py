"""Job counters and durations by type and queue, exported by a side process Dramatiq forks."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from satworks import logs
from satworks.errors import PermanentError, SatworksError
from satworks.metrics.build import register_build_info
from satworks.metrics.jobs import JobMetrics
from satworks.settings import Settings
from satworks.workers.orphans import wait_until_orphaned


class JobMetricsMiddleware(Middleware):
    def __init__(self, metrics: JobMetrics, *, queue_prefix: str) -> None:
        self.metrics = metrics
        self.prefix = queue_prefix
        self._local = threading.local()
        # The labelled children per (actor, queue name): ``labels()`` locks and builds a key per call.
        self._children: dict[tuple[int, str, str], Any] = {}

    @property
    def forks(self) -> list[Any]:
        return [serve_worker_metrics]

    def _labels(self, message: Any) -> tuple[str, str]:
        queue = message.queue_name.removesuffix(".DQ").removeprefix(self.prefix)
        return message.actor_name, queue

    def _child(self, metric: Any, message: Any) -> Any:
        """``metric.labels(actor, queue)``, cached (created on first use, as ``labels()`` would)."""
        key = (id(metric), message.actor_name, message.queue_name)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*self._labels(message))
        return child

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.started = time.perf_counter()
        self._child(self.metrics.started, message).inc()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started, self._local.started = getattr(self._local, "started", None), None
        if started is not None:
            self._child(self.metrics.duration, message).observe(time.perf_counter() - started)
        if exception is None:
            self._child(self.metrics.succeeded, message).inc()
            return
        # Bounded: the codes of our exception tree; a node that cannot be asked is `node_unavailable`.
        code = exception.code if isinstance(exception, SatworksError) else "unexpected"
        self.metrics.errors.labels(*self._labels(message), code).inc()
        if not message.failed:
            self._child(self.metrics.retried, message).inc()
        elif isinstance(exception, PermanentError):
            self._child(self.metrics.failed, message).inc()
        else:
            self._child(self.metrics.dead, message).inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.failed:
            self._child(self.metrics.dead, message).inc()


def serve_worker_metrics() -> int:
    """Forked by the Dramatiq CLI: serve every worker process's metrics from the multiprocess dir.

    A port already taken is logged as one line and ends this process (exit 1), not a traceback. Its
    logs (Dramatiq's own too, e.g. "Killing fork process..." on a second SIGTERM) are JSON lines like
    the worker processes': the CLI's ``--skip-logging`` leaves this process without a handler.

    It ends when the Dramatiq process that forked it is gone (``workers.orphans``)."""
    parent = os.getppid()
    settings = Settings()
    logs.configure(settings.log_level)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])  # type: ignore[no-untyped-call]
    register_build_info(registry)
    try:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=registry)
    except OSError as exc:
        extra = {"action": "worker_metrics_unavailable", "port": settings.worker_metrics_port, "error": str(exc)}
        logging.getLogger(__name__).error("worker metrics cannot be served", extra=extra)
        return 1
    wait_until_orphaned(parent)
    return 0
