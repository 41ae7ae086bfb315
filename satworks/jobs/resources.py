"""What the worker lends platform jobs: its database pool, its broker and the payment resources.

Opened once per worker process (``workers/main.py``) and handed to every job in ``JobContext.resources``;
app job types (``canary``) need none of it and never look.
"""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq
from sqlalchemy import Engine

from satworks.jobs.payments import PaymentResources
from satworks.metrics.platform import PlatformMetrics
from satworks.settings import Settings


@dataclass(frozen=True)
class WorkerResources:
    settings: Settings
    engine: Engine  # the worker's pool for platform work (the payment actors share it)
    broker: dramatiq.Broker  # Dramatiq's global broker of this worker: enqueue from job code
    payments: PaymentResources
    metrics: PlatformMetrics
