"""Platform jobs run in the test process: the worker's resources built from a test's settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry

from satworks import clock
from satworks.broker.build import build_broker
from satworks.broker.client import payment_sender
from satworks.db.engine import sync_engine
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.jobs.payments import PaymentResources
from satworks.jobs.resources import WorkerResources
from satworks.metrics.platform import PlatformMetrics
from satworks.scheduler.intake_adapter import IntakeSubmit
from satworks.settings import Settings


@contextmanager
def worker_resources(settings: Settings) -> Iterator[WorkerResources]:
    """What ``workers/main.py`` lends platform jobs, with a registry of its own (read its metrics)."""
    broker = build_broker(settings)
    engine = sync_engine(settings.database_url, pool_size=2)
    rpc = BitcoinRpc(settings.bitcoind_rpc_url, timeout_s=settings.bitcoind_rpc_timeout_s)
    payments = PaymentResources(settings, engine, rpc, payment_sender(broker, settings.queue_prefix))
    try:
        yield WorkerResources(settings, engine, broker, payments, PlatformMetrics.create(CollectorRegistry()))
    finally:
        broker.close()
        engine.dispose()


def submit_as_scheduler(settings: Settings, job_type: str) -> uuid.UUID:
    """A platform job submitted as the scheduler submits it (an app's ``POST /v1/jobs`` cannot); its id.
    Blocking: from async tests, call it through ``asyncio.to_thread``."""
    engine = sync_engine(settings.database_url, pool_size=1)
    adapter = IntakeSubmit(settings, engine)
    try:
        task = f"test-{uuid.uuid4().hex[:8]}"
        return adapter.submit(task, clock.utcnow(), job_type=job_type, payload={}, priority=None).job_id
    finally:
        adapter.close()
        engine.dispose()


def repairs(resources: WorkerResources, kind: str) -> float:
    """``satworks_reconciler_repairs_total{kind}`` as the run left it."""
    for metric in resources.metrics.repairs.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == {"kind": kind}:
                return sample.value
    return 0.0
