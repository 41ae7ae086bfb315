"""Operator actions run from the CLI against the same storage and broker as the intake."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from satworks.broker.build import build_broker
from satworks.broker.client import enqueue_many
from satworks.broker.messages import job_message, payment_message
from satworks.db import jobs as q
from satworks.db.engine import sync_engine
from satworks.db.schema import apps
from satworks.errors import NotFound
from satworks.jobs.catalog import max_age_ms
from satworks.jobs.request import JobIn
from satworks.jobs.submission import job_row
from satworks.settings import Settings


def enqueue_job(
    settings: Settings, app_name: str, job_type: str, payload: dict[str, Any], priority: str | None
) -> dict[str, str]:
    """Record and enqueue one job for ``app_name``; returns its id and status."""
    spec = JobIn.model_validate({"type": job_type, "payload": payload, "priority": priority})
    engine = sync_engine(settings.database_url, pool_size=1)
    broker = build_broker(settings)
    try:
        with engine.begin() as conn:
            app_id = conn.execute(
                select(apps.c.id).where(apps.c.name == app_name, apps.c.revoked_at.is_(None))
            ).scalar()
            if app_id is None:
                raise NotFound(f"no active app named {app_name!r}")
            row, delay_ms = job_row(spec, app_id=app_id, idempotency_key=None, queue_prefix=settings.queue_prefix)
            conn.execute(q.insert_many(), [row])
        age = max_age_ms(row["type"], settings.default_max_age_ms)
        message = job_message(
            row["id"], row["type"], row["queue"], row["max_retries"], delay_ms=delay_ms, max_age_ms=age
        )
        enqueue_many(broker, [(message, delay_ms)])
        with engine.begin() as conn:
            conn.execute(q.mark_enqueued([row["id"]]))
    finally:
        broker.close()
        engine.dispose()
    return {"id": str(row["id"]), "status": row["status"]}


def sweep_payments(settings: Settings) -> dict[str, int]:
    """Run one payment sweep in this process (what ``blocknotify`` triggers through a job)."""
    from satworks.integrations.bitcoin.rpc import BitcoinRpc
    from satworks.jobs.payments import PaymentResources, sweep

    engine = sync_engine(settings.database_url, pool_size=1)
    broker = build_broker(settings)
    rpc = BitcoinRpc(settings.bitcoind_rpc_url, timeout_s=settings.bitcoind_rpc_timeout_s)

    def enqueue(actor: str, args: tuple[Any, ...], delay_ms: int | None) -> None:
        broker.enqueue(payment_message(actor, args, settings.queue_prefix), delay=delay_ms)

    try:
        return sweep(PaymentResources(settings, engine, rpc, enqueue))
    finally:
        broker.close()
        engine.dispose()
