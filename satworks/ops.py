"""Operator actions run from the CLI against the same storage and broker as the intake."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from satworks.broker.build import build_broker
from satworks.broker.client import payment_sender
from satworks.db import apps as apps_db
from satworks.db.engine import sync_engine
from satworks.errors import ValidationFailed
from satworks.intake.resources import open_intake
from satworks.jobs.request import JobIn
from satworks.jobs.submission import validation_details
from satworks.settings import Settings


def enqueue_job(
    settings: Settings, app_name: str, job_type: str, payload: dict[str, Any], priority: str | None
) -> dict[str, str]:
    """Submit one job for ``app_name`` through the intake, as ``POST /v1/jobs`` does; returns its id
    and status. The operator may also submit the platform's own types (``draws.due``,
    ``lightning_sweep``, ...), which apps cannot: the runbooks use them to run a scheduled task now."""
    try:
        spec = JobIn.model_validate({"type": job_type, "payload": payload, "priority": priority})
    except ValidationError as exc:
        raise ValidationFailed("invalid job request", details=validation_details(exc)) from exc
    return asyncio.run(_enqueue_job(settings, app_name, spec))


async def _enqueue_job(settings: Settings, app_name: str, spec: JobIn) -> dict[str, str]:
    async with open_intake(settings, pool_size=1, threads=1) as intake:
        app_id = await apps_db.active_id(intake.engine, app_name)
        job, _ = await intake.jobs.submit(app_id, spec, None, internal=True)
    return {"id": str(job.id), "status": job.status.value}


def sweep_payments(settings: Settings) -> dict[str, int]:
    """Run one payment sweep in this process (what ``blocknotify`` triggers through a job)."""
    from satworks.integrations.bitcoin.rpc import BitcoinRpc
    from satworks.jobs.payments import PaymentResources, sweep

    engine = sync_engine(settings.database_url, pool_size=1)
    broker = build_broker(settings)
    rpc = BitcoinRpc(settings.bitcoind_rpc_url, timeout_s=settings.bitcoind_rpc_timeout_s)
    try:
        return sweep(PaymentResources(settings, engine, rpc, payment_sender(broker, settings.queue_prefix)))
    finally:
        broker.close()
        engine.dispose()
