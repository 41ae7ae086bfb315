"""``satworks lnd-listener``: lnd's invoice stream turned into checks, resumed from stored indices.

SubscribeInvoices only makes settlement fast; it decides nothing. For every update about one of our
requests that says something we have not stored (a settlement, in practice), the listener enqueues
``lightning.check``, which re-reads the invoice and is the only thing that moves a status. Then it
stores the stream's position (``add_index``, ``settle_index``, per node identity) in Postgres, so a
restarted listener or a dropped stream resubscribes from there: lnd replays what came after, and an
update handed on twice only makes a second, idle check. A position is stored only after its check
was enqueued, so nothing is skipped. Cancellations and expiries are never pushed by lnd: the check
chain and the sweep (``jobs.lightning``) find them, and everything else while the stream is down.

Every failure ends the stream; the listener subscribes again after a jittered backoff from 0.5 s
to ``SATWORKS_LND_RECONNECT_MAX_S``. After lnd refused the credentials or a file could not be read,
the client is made again, so a replaced macaroon or certificate is picked up without a restart.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.common import compute_backoff
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine

from satworks import clock
from satworks.broker.build import build_broker
from satworks.broker.client import payment_sender
from satworks.db import lightning as store
from satworks.db.engine import db_errors, sync_engine
from satworks.errors import DependencyUnavailable, NodeUnavailable
from satworks.integrations.lnd.client import LndClient
from satworks.integrations.lnd.errors import LndAuthFailed, LndConfigError, LndError
from satworks.integrations.lnd.records import InvoiceState, LndInvoice
from satworks.integrations.lnd.stream import Stream
from satworks.jobs.lightning import CHECK, client_from_settings
from satworks.metrics.build import register_build_info
from satworks.metrics.lightning import ListenerMetrics
from satworks.settings import Settings

log = logging.getLogger(__name__)
MIN_BACKOFF_MS = 500
STABLE_S = 10.0  # a stream that lasted this long starts the backoff over


class InvoiceListener:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        send: Callable[[str, tuple[Any, ...], int | None], None],
        metrics: ListenerMetrics,
        connect: Callable[[], LndClient] | None = None,
    ) -> None:
        self._engine = engine
        self._send = send
        self._metrics = metrics
        self._connect = connect or (lambda: client_from_settings(settings))
        self._max_backoff_ms = int(settings.lnd_reconnect_max_s * 1000)
        self._client: LndClient | None = None
        self._stream: Stream[LndInvoice] | None = None
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # re-entrant: ``stop`` may run in a signal handler on this thread

    def stop(self) -> None:
        """End the stream and the loop (from a signal handler or another thread)."""
        self._stopping.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()

    def run(self) -> None:
        """Subscribe, hand updates on, and subscribe again after any failure, until ``stop``."""
        attempts = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            reason = self._session()
            self._metrics.up.set(0)
            if reason is None:  # stopped
                break
            self._metrics.reconnects.labels(reason).inc()
            if time.monotonic() - started >= STABLE_S:
                attempts = 0
            attempts, delay_ms = compute_backoff(attempts, factor=MIN_BACKOFF_MS, max_backoff=self._max_backoff_ms)
            log.info("resubscribing in %d ms", delay_ms, extra={"action": "lnd_stream_backoff", "reason": reason})
            self._stopping.wait(delay_ms / 1000)
        self._close_client()

    def _session(self) -> str | None:
        """One subscription, until it fails (the reason, for the metric and the log) or ``stop`` (None)."""
        try:
            if self._client is None:
                self._client = self._connect()
            node = self._client.get_info().identity_pubkey
            with db_errors(), self._engine.begin() as conn:
                # Without a stored position: live updates only (lnd replays nothing for index 0); what
                # came before is the checks' to find.
                position = store.cursor(conn, node) or store.Cursor(0, 0)
            stream = self._client.subscribe_invoices(position.add_index, position.settle_index)
            with self._lock:
                if self._stopping.is_set():
                    stream.close()
                    return None
                self._stream = stream
            self._metrics.up.set(1)
            self._show(position)
            log.info(
                "subscribed to lnd's invoices",
                extra={
                    "action": "lnd_stream_subscribed",
                    "add_index": position.add_index,
                    "settle_index": position.settle_index,
                },
            )
            for invoice in stream:
                position = self._hand_on(node, invoice, position)
            return None if self._stopping.is_set() else "ended"
        except NodeUnavailable as exc:
            log.warning("lnd stream down: %s", exc.message, extra={"action": "lnd_stream_down"})
            return "node_unavailable"
        except (LndAuthFailed, LndConfigError) as exc:
            log.error("lnd refused the listener: %s", exc.message, extra={"action": "lnd_stream_refused"})
            self._close_client()
            return "auth_failed" if isinstance(exc, LndAuthFailed) else "config_error"
        except LndError as exc:
            log.error("lnd stream failed: %s", exc.message, extra={"action": "lnd_stream_failed"})
            return "lnd_error"
        except DependencyUnavailable as exc:  # Postgres or the broker: resume from the stored position
            log.warning("stream paused: %s", exc.message, extra={"action": "lnd_stream_dependency"})
            return "dependency"
        except Exception:  # the loop's boundary: a bug must not end the listener for good
            log.exception("lnd stream failed", extra={"action": "lnd_stream_failed"})
            return "error"
        finally:
            with self._lock:
                if self._stream is not None:
                    self._stream.close()
                    self._stream = None

    def _hand_on(self, node: str, invoice: LndInvoice, position: store.Cursor) -> store.Cursor:
        """Enqueue a check if the update tells something new about one of ours, then store the position."""
        with db_errors(), self._engine.connect() as conn:
            ours = store.by_hash(conn, invoice.payment_hash)
        news = ours is not None and (invoice.state, invoice.amt_paid_msat) != (ours.state, ours.amt_paid_msat)
        if ours is not None and news:
            self._send(CHECK, (str(ours.payment_id),), None)
            if invoice.state == InvoiceState.SETTLED and invoice.settled_at is not None:
                lag = (clock.utcnow() - invoice.settled_at).total_seconds()
                self._metrics.settle_lag.observe(max(0.0, lag))
            log.info(
                "invoice update handed on",
                extra={"action": "lnd_update", "payment_id": str(ours.payment_id), "state": str(invoice.state)},
            )
        moved = store.Cursor(
            max(position.add_index, invoice.add_index), max(position.settle_index, invoice.settle_index)
        )
        if moved != position:
            with db_errors(), self._engine.begin() as conn:
                store.save_cursor(conn, node, moved)
            self._show(moved)
        self._metrics.updates.labels(str(invoice.state), "enqueued" if news else "ignored").inc()
        self._metrics.last_update.set(time.time())
        return moved

    def _show(self, position: store.Cursor) -> None:
        self._metrics.add_index.set(position.add_index)
        self._metrics.settle_index.set(position.settle_index)

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def run(settings: Settings) -> int:
    """The ``satworks lnd-listener`` process: until SIGTERM or SIGINT."""
    registry = CollectorRegistry()
    register_build_info(registry)
    metrics = ListenerMetrics.create(registry)
    metrics.up.set(0)
    start_http_server(settings.lnd_listener_metrics_port, settings.lnd_listener_metrics_host, registry)
    engine = sync_engine(settings.database_url, pool_size=1)
    broker = build_broker(settings)
    listener = InvoiceListener(
        settings, engine=engine, send=payment_sender(broker, settings.queue_prefix), metrics=metrics
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: listener.stop())
    log.info("lnd listener started", extra={"action": "lnd_listener_started", "node": settings.lnd_grpc_host})
    try:
        listener.run()
    finally:
        broker.close()
        engine.dispose()
        log.info("lnd listener stopped", extra={"action": "lnd_listener_stopped"})
    return 0
