"""``lightning_sweep``: the scheduler's way to start a sweep of open Lightning invoices.

The scheduler submits job types (their rows carry the slot's key and outcome); the sweep itself is
the platform actor ``lightning.sweep`` (``jobs.lightning``), which keeps no job row. This job hands
it to the broker on ``critical`` and is done; a sweep already running makes the new one a no-op.
"""

from __future__ import annotations

import dramatiq

from satworks.broker.client import payment_sender
from satworks.jobs.base import JobContext, JobType, Payload
from satworks.jobs.lightning import SWEEP


class SweepPayload(Payload):
    pass


def run(ctx: JobContext, payload: SweepPayload) -> dict[str, object]:
    payment_sender(dramatiq.get_broker(), ctx.settings.queue_prefix)(SWEEP, (), None)
    return {"requested": SWEEP}


LIGHTNING_SWEEP = JobType(
    name="lightning_sweep",
    payload=SweepPayload,
    run=run,
    default_priority="high",
    max_retries=3,
    min_backoff_ms=500,
    internal=True,
)
