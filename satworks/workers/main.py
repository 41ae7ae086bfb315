"""Worker entry point, imported by the Dramatiq CLI in each worker process (``satworks worker``).

This module is the edge for worker processes: it reads settings, builds the broker with satworks'
middleware, sets it as Dramatiq's global and declares the actors.

The garbage collector is off while it imports and builds: that makes a few hundred thousand objects
and no garbage, and collections would only slow the pool's start-up (by about 8 %). At the end
``gc.freeze()`` moves what start-up made out of the collector's reach, as ``satworks web`` does.

The GIL's switch interval is 1 ms rather than Python's 5 ms. A job here is a relay of threads (the
consumer, a worker thread, the status writer, the acks thread), each waking the next; a thread woken
by its socket or lock waits for a running thread to give up the GIL, up to the interval. Measured in
``bench/worker_ab.py`` (bench/RESULTS.md): the drain 3-11 % faster, no more CPU per job.
"""

# ruff: noqa: E402 - the collector is switched off before the imports below

from __future__ import annotations

import gc
import sys

gc.disable()

import dramatiq
from prometheus_client import REGISTRY

from satworks import logs
from satworks.broker.build import build_broker
from satworks.broker.client import payment_sender
from satworks.db.engine import sync_engine
from satworks.integrations.bitcoin.rpc import BitcoinRpc
from satworks.jobs.catalog import JOB_TYPES
from satworks.jobs.draws import DRAW_ACTORS, DrawResources
from satworks.jobs.lightning import LIGHTNING_ACTORS, LightningResources, LndConnection
from satworks.jobs.payments import PaymentResources
from satworks.jobs.resources import WorkerResources
from satworks.metrics.draws import DrawMetrics
from satworks.metrics.jobs import JobMetrics
from satworks.metrics.lightning import LightningMetrics
from satworks.metrics.notify import NotifyMetrics
from satworks.metrics.platform import PlatformMetrics
from satworks.settings import Settings
from satworks.workers import notify
from satworks.workers.actors import declare_actors, declare_internal_actors
from satworks.workers.middleware.metrics import JobMetricsMiddleware
from satworks.workers.middleware.tracking import JobTracking
from satworks.workers.orphans import StopWhenOrphaned
from satworks.workers.reaper import DeadWorkerReaper
from satworks.workers.signals import coalesce_stop_signals
from satworks.workers.status import StatusWriter

GIL_SWITCH_INTERVAL_S = 0.001


def build(settings: Settings) -> dramatiq.Broker:
    engine = sync_engine(settings.database_url, pool_size=2)
    tracking = JobTracking(
        StatusWriter(engine, batch_max=settings.status_batch_max, gather_s=settings.status_gather_ms / 1000),
        max_crashes=settings.max_crashes,
        tracked=frozenset(JOB_TYPES),
        claim_ahead_max_run_s=settings.claim_ahead_max_run_ms / 1000,
    )
    broker = build_broker(
        settings,
        extra_middleware=[
            tracking,
            JobMetricsMiddleware(JobMetrics.create(REGISTRY), queue_prefix=settings.queue_prefix),
            DeadWorkerReaper(interval_ms=settings.reaper_interval_ms),
            StopWhenOrphaned(),
        ],
    )
    notifications = notify.build(settings, broker, NotifyMetrics.create(REGISTRY))
    for middleware in notify.middleware(settings, notifications):
        broker.add_middleware(middleware)
    dramatiq.set_broker(broker)
    enqueue = payment_sender(broker, settings.queue_prefix)
    rpc = BitcoinRpc(settings.bitcoind_rpc_url, timeout_s=settings.bitcoind_rpc_timeout_s)
    payments_engine = sync_engine(settings.database_url, pool_size=4)
    payments = PaymentResources(settings, payments_engine, rpc, enqueue)
    resources = WorkerResources(settings, payments_engine, broker, payments, PlatformMetrics.create(REGISTRY))
    declare_actors(broker, JOB_TYPES, tracking, settings, resources)
    declare_internal_actors(broker, payments)
    notify.declare_actors(broker, notifications)
    lightning = LightningResources(
        settings, payments_engine, LndConnection(settings), enqueue, LightningMetrics.create(REGISTRY)
    )
    declare_internal_actors(broker, lightning, LIGHTNING_ACTORS)
    mail = notifications.emails
    draws = DrawResources(
        settings, payments_engine, rpc, enqueue, mail.composer, mail.enqueue, metrics=DrawMetrics.create(REGISTRY)
    )
    declare_internal_actors(broker, draws, DRAW_ACTORS)
    return broker


coalesce_stop_signals()  # first: a pool stopped as a process group while this process starts stops gracefully too
settings = Settings()
logs.configure(settings.log_level)
broker = build(settings)
gc.freeze()
gc.enable()
sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
