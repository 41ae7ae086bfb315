"""Bounded redelivery after a worker dies: a thread per worker process that heartbeats and recovers.

A killed worker's unacknowledged messages go back to their queue once its heartbeat is older than
``heartbeat_timeout_ms``; this thread makes sure the check runs every ``reaper_interval_ms``, so the
worst case is about ``heartbeat_timeout_ms + reaper_interval_ms`` (RabbitMQ redelivers on its own
when the connection drops, so there the thread is not started).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from satworks.broker.errors import broker_errors
from satworks.broker.redis import SatworksRedisBroker
from satworks.errors import BrokerUnavailable

log = logging.getLogger(__name__)


class DeadWorkerReaper(Middleware):
    def __init__(self, *, interval_ms: int) -> None:
        self.interval_s = interval_ms / 1000
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        if not isinstance(broker, SatworksRedisBroker):
            return
        if not broker.can_recover:
            log.error(
                "dead-worker recovery is off: this Dramatiq's Redis dispatch script is not the known one",
                extra={"action": "reaper_off"},
            )
            return
        threading.Thread(target=self._loop, args=(broker,), name="satworks-reaper", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stop.set()

    def _loop(self, broker: SatworksRedisBroker) -> None:
        while not self._stop.is_set():
            try:
                with broker_errors():
                    broker.recover_dead_workers()
            except BrokerUnavailable:  # Redis may be down; try again next interval
                log.warning("dead-worker recovery failed", extra={"action": "reaper_failed"}, exc_info=True)
            self._stop.wait(self.interval_s)
