"""Acknowledgements that wait for the job's outcome to commit, on a thread of their own.

A worker thread hands a job's outcome to the status writer and goes on to its next message; the
message is acknowledged here once that outcome is durable. A worker that dies in between leaves an
unacknowledged message, which is redelivered: its claim then finds the job finished and skips it (or
counts the crash). Never the reverse, a message gone while its job still reads ``running``.

The worker thread no longer waits for the writer's round trip, and its next claim usually shares
the writer's statement (and commit) with the outcome it just handed over.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.errors import BrokerConnectionError

from satworks.workers.pending import Pending
from satworks.workers.status import STOP, Outcome, take_batch

log = logging.getLogger(__name__)

Ack = Callable[[], None]


class DeferredAcks:
    """FIFO of (outcome, its pending write, the message's ack): each ack runs once its write is done.

    ``rewrite`` is called when the pending write failed: it writes the outcome again, patiently, and
    reports an outcome it cannot write. The ack follows either way, as it did when the worker thread
    waited itself (the reconciler settles a job whose outcome was lost). The acks waiting at one time
    go to the broker together (``start(ack_all=...)``): one round trip for many messages.
    """

    def __init__(
        self, rewrite: Callable[[Outcome], None], *, wait_s: float = 60.0, retry_s: float = 1.0, batch_max: int = 256
    ) -> None:
        self._rewrite = rewrite
        self._wait_s = wait_s  # as the status writer's own bound on a write
        self._retry_s = retry_s  # between attempts at acks the broker refused (connection lost)
        self._batch_max = batch_max
        self._ack_all: Callable[[list[Ack]], None] = _one_by_one
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="satworks-deferred-acks", daemon=True)
        self._stopping = threading.Event()

    def start(self, ack_all: Callable[[list[Ack]], None] | None = None) -> None:
        """``ack_all``: the broker's way to send many acks at once (default: each alone)."""
        if ack_all is not None:
            self._ack_all = ack_all
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ack everything handed over so far (their writes first), then end the thread. Again: nothing."""
        if not self._thread.is_alive():
            return
        self._inbox.put(STOP)
        self._thread.join(timeout=timeout_s)
        self._stopping.set()  # acks still retrying against a lost broker give up: redelivered later
        self._thread.join(timeout=2 * self._retry_s)

    def after(self, outcome: Outcome, written: Pending[None]) -> Callable[[Ack], None]:
        """What a broker that defers acks calls with the message's ack (or nack)."""
        return lambda ack: self._inbox.put((outcome, written, ack))

    def _loop(self) -> None:
        while True:
            first = self._inbox.get()
            if first is STOP:
                return
            batch = take_batch(self._inbox, first, batch_max=self._batch_max)
            for outcome, written, _ in batch:  # in order; the writer commits in the same order
                self._settle(outcome, written)
            self._send([ack for *_, ack in batch])

    def _settle(self, outcome: Outcome, written: Pending[None]) -> None:
        try:
            written.result(timeout=self._wait_s)
            return
        except Exception as exc:  # the writer's error, whatever it is: write the outcome again
            error = type(exc).__name__
            log.warning("status write failed; writing again", extra={"action": "status_write_retry", "error": error})
        try:
            self._rewrite(outcome)
        except Exception:  # the deferred thread's boundary: the ack must still happen
            log.exception("job outcome could not be recorded", extra={"action": "outcome_lost"})

    def _send(self, acks: list[Ack]) -> None:
        while True:
            try:
                self._ack_all(acks)
                return
            except BrokerConnectionError:
                if self._stopping.is_set():
                    log.warning("acks abandoned at shutdown: redelivered later", extra={"action": "ack_abandoned"})
                    return
                log.warning("acks failed; retrying", extra={"action": "ack_retry", "n": len(acks)})
                time.sleep(self._retry_s)
            except Exception:
                log.exception("acks failed", extra={"action": "ack_failed", "n": len(acks)})
                return


def _one_by_one(acks: list[Ack]) -> None:
    for ack in acks:
        ack()
