"""Lightning payment jobs: create a request's invoice, check one invoice, sweep every open one.

Like the on-chain jobs (``jobs.payments``) they re-read lnd, are safe to run twice or at once (state
moves happen under the request's row lock in ``db.lightning.apply_invoice``) and never decide
without a successful read: an unreachable node raises ``NodeUnavailable`` (retried with backoff),
a refusal (a wrong macaroon, an unknown invoice) fails the job and leaves the status as it was.
The listener (``satworks lnd-listener``) only enqueues ``lightning.check``; the check chain and the
sweep find everything without it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from satworks import clock
from satworks.db import lightning as store
from satworks.db.engine import db_errors
from satworks.db.payments import claim_check
from satworks.errors import NodeUnavailable
from satworks.integrations.lnd.errors import LndAlreadyExists, LndAuthFailed, LndConfigError, LndError, LndNotFound
from satworks.integrations.lnd.records import LndInvoice
from satworks.jobs.payments import InternalActor, next_check_delay_ms
from satworks.metrics.lightning import LightningMetrics
from satworks.payments.lightning import sat_to_msat
from satworks.payments.status import PaymentStatus
from satworks.settings import Settings

if TYPE_CHECKING:
    from satworks.integrations.lnd.client import LndClient

log = logging.getLogger(__name__)
CREATE_INVOICE, CHECK, SWEEP = "lightning.create_invoice", "lightning.check", "lightning.sweep"
SWEEP_PAGE = 1_000  # invoices per ListInvoices call


class LndConnection:
    """A worker process's lnd client, made on first use (so a worker starts without lnd's files) and
    made again after lnd refused our credentials or the files could not be read, so a replaced
    macaroon or certificate is picked up by the next attempt."""

    def __init__(self, settings: Settings, *, factory: Callable[[], LndClient] | None = None) -> None:
        self._factory = factory or (lambda: client_from_settings(settings))
        self._lock = threading.Lock()
        self._client: LndClient | None = None

    @contextmanager
    def use(self) -> Iterator[LndClient]:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            client = self._client
        try:
            yield client
        except (LndAuthFailed, LndConfigError):
            self.reset()
            raise

    def reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def client_from_settings(settings: Settings) -> LndClient:
    """The merchant node's client from ``SATWORKS_LND_*``; raises ``LndConfigError`` for unusable files.

    gRPC and lnd's protobuf modules are imported here, on first use, not when a worker starts."""
    from satworks.integrations.lnd.client import LndClient

    return LndClient(
        settings.lnd_grpc_host,
        tls_cert_path=settings.lnd_tls_cert_path,
        macaroon_path=settings.lnd_macaroon_path,
        timeout_s=settings.lnd_rpc_timeout_s,
    )


@dataclass(frozen=True)
class LightningResources:
    settings: Settings
    engine: Engine
    lnd: LndConnection
    enqueue: Callable[[str, tuple[Any, ...], int | None], None]
    metrics: LightningMetrics


@contextmanager
def _observed(res: LightningResources, kind: str, payment_id: str | None = None) -> Iterator[None]:
    """Count a job's outcome if it fails (successes count themselves), and say clearly why lnd refused."""
    try:
        yield
    except NodeUnavailable:
        res.metrics.calls.labels(kind, "node_unavailable").inc()
        raise
    except (LndAuthFailed, LndConfigError) as exc:
        outcome = "auth_failed" if isinstance(exc, LndAuthFailed) else "config_error"
        res.metrics.calls.labels(kind, outcome).inc()
        log.error(
            "lnd refused: %s", exc.message, extra={"action": f"lnd_{outcome}", "job": kind, "payment_id": payment_id}
        )
        raise
    except LndNotFound:
        res.metrics.calls.labels(kind, "not_found").inc()
        raise
    except LndError:
        res.metrics.calls.labels(kind, "lnd_error").inc()
        raise
    except Exception:  # counted, then Dramatiq's retry policy decides
        res.metrics.calls.labels(kind, "error").inc()
        raise


def create_invoice(res: LightningResources, payment_id: str) -> None:
    """``creating`` → ``new``: ask lnd for the request's invoice, once.

    AddInvoice is not idempotent by itself, and its answer can be lost after lnd acted. So the
    preimage is chosen here and stored first: every attempt asks for the same invoice, and a repeat
    that lnd refuses as existing reads it back by its hash instead of making a second one.
    """
    pid = uuid.UUID(payment_id)
    with _observed(res, "create_invoice", payment_id):
        with db_errors(), res.engine.connect() as conn:
            loaded = store.load(conn, pid)
        if loaded is None or loaded[0].method != store.METHOD or loaded[0].status != PaymentStatus.CREATING:
            return  # unknown, or created by an earlier run
        payment, stored = loaded
        if stored is None:
            preimage = secrets.token_bytes(32)
            payment_hash = hashlib.sha256(preimage).hexdigest()
            with db_errors(), res.engine.begin() as conn:
                stored = store.reserve(conn, pid, payment_hash, preimage, sat_to_msat(payment.amount_sat))
        if stored.preimage is None:
            return  # recorded meanwhile by another run
        now = clock.utcnow()
        # lnd's expiry counts from its own creation time: never later than the request's.
        expiry_s = max(1, int((payment.expires_at - now).total_seconds()))
        with res.lnd.use() as lnd:
            try:
                lnd.add_invoice(
                    value_sat=payment.amount_sat, memo=payment.memo or "", expiry_s=expiry_s, preimage=stored.preimage
                )
            except LndAlreadyExists:
                log.info("invoice existed already", extra={"action": "invoice_exists", "payment_id": payment_id})
            invoice = lnd.lookup_invoice(stored.payment_hash)
        if invoice.value_msat != stored.value_msat:
            wrong = f"{invoice.value_msat} msat, not {stored.value_msat}"
            raise LndError(f"lnd's invoice {stored.payment_hash} is for {wrong}")
        with db_errors(), res.engine.begin() as conn:
            created = store.record_created(
                conn,
                pid,
                payment_hash=invoice.payment_hash,
                payment_request=invoice.payment_request,
                add_index=invoice.add_index,
                node_expires_at=invoice.expires_at,
            )
        res.metrics.calls.labels("create_invoice", "changed" if created else "unchanged").inc()
    if created:
        log.info("invoice created", extra={"action": "invoice_created", "payment_id": payment_id})
        res.enqueue(CHECK, (payment_id, 0), next_check_delay_ms(res.settings, 0, payment.expires_at, clock.utcnow()))


def check(res: LightningResources, payment_id: str, seq: int | None = None) -> None:
    """Re-read one request's invoice. A scheduled check (``seq`` given) schedules the next one while the
    request is open; a check without ``seq`` (from the listener) does not."""
    pid = uuid.UUID(payment_id)
    with _observed(res, "check", payment_id):
        with db_errors(), res.engine.connect() as conn:
            loaded = store.load(conn, pid)
        if loaded is None or loaded[0].method != store.METHOD or loaded[0].payment_hash is None:
            return
        payment, payment_hash = loaded[0], loaded[0].payment_hash
        read_at = clock.utcnow()
        with res.lnd.use() as lnd:
            invoice = lnd.lookup_invoice(payment_hash)
        answered_at = clock.utcnow()
        with db_errors(), res.engine.begin() as conn:
            verdict = store.apply_invoice(conn, pid, invoice, read_at, answered_at)
            follow_up = seq is not None and claim_check(conn, pid, seq)
        moved = verdict is not None and verdict.status != payment.status
        res.metrics.calls.labels("check", "changed" if moved else "unchanged").inc()
    status = verdict.status if verdict is not None else payment.status
    if moved:
        log.info(
            "lightning payment checked",
            extra={"action": "lightning_checked", "payment_id": payment_id, "status": str(status)},
        )
    if follow_up and seq is not None and status.is_open:
        delay_ms = next_check_delay_ms(res.settings, seq + 1, payment.expires_at, clock.utcnow())
        res.enqueue(CHECK, (payment_id, seq + 1), delay_ms)


def sweep(res: LightningResources) -> dict[str, int]:
    """Re-read every open invoice with few calls, and apply what changed or came due.

    One ListInvoices page per ``SWEEP_PAGE`` invoices still pending on the node (from the oldest
    open one of ours), then one LookupInvoice per open invoice of ours that is no longer pending
    (settled or canceled since). Nothing happens without an open request: a deployment without
    lnd never calls it.
    """
    read_at = clock.utcnow()
    counts = {"open": 0, "pending": 0, "lookups": 0, "applied": 0, "missing": 0}
    with _observed(res, "sweep"), db_errors(), res.engine.begin() as conn:
        if not store.try_sweep_lock(conn):
            return {"skipped": 1}
        watched = store.open_invoices(conn)
        counts["open"] = len(watched)
        if not watched:
            return counts
        read: list[tuple[store.Watched, LndInvoice, datetime]] = []  # each with the time its answer came
        with res.lnd.use() as lnd:
            pending = _pending(lnd, watched[0].add_index - 1)
            paged_at = clock.utcnow()
            counts["pending"] = len(pending)
            for item in watched:
                invoice, answered_at = pending.get(item.payment_hash), paged_at
                if invoice is None:
                    counts["lookups"] += 1
                    try:
                        invoice = lnd.lookup_invoice(item.payment_hash)
                    except LndNotFound:
                        counts["missing"] += 1
                        log.error(
                            "lnd does not know an open request's invoice",
                            extra={"action": "lightning_invoice_missing", "payment_id": str(item.payment_id)},
                        )
                        continue
                    answered_at = clock.utcnow()
                read.append((item, invoice, answered_at))
        due = read_at - timedelta(seconds=1)
        for item, invoice, answered_at in read:
            if (invoice.state, invoice.amt_paid_msat) != (item.state, item.amt_paid_msat) or item.expires_at <= due:
                store.apply_invoice(conn, item.payment_id, invoice, read_at, answered_at)
                counts["applied"] += 1
        res.metrics.calls.labels("sweep", "changed" if counts["applied"] else "unchanged").inc()
    return counts


def _pending(lnd: LndClient, offset: int) -> dict[str, LndInvoice]:
    found: dict[str, LndInvoice] = {}
    while True:
        page = lnd.list_invoices(offset, SWEEP_PAGE, pending_only=True)
        found.update((invoice.payment_hash, invoice) for invoice in page.invoices)
        if len(page.invoices) < SWEEP_PAGE:
            return found
        offset = page.last_index_offset


LIGHTNING_ACTORS = (
    InternalActor(CREATE_INVOICE, create_invoice, max_retries=30, max_backoff_ms=60_000),
    InternalActor(CHECK, check, max_retries=40, max_backoff_ms=30_000),
    InternalActor(SWEEP, sweep, max_retries=5, time_limit_ms=600_000),
)
