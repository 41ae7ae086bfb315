"""``notify.sweep``: the job type ``satworks scheduler`` submits every ``SATWORKS_SCHEDULE_NOTIFY_SWEEP``.

Job types get only settings, while the sweep needs the worker's database and broker resources, so
the job hands the work to the internal actor ``outbox.sweep`` (``jobs/outbox.py``), which has them.
"""

from __future__ import annotations

import dramatiq

from satworks.broker.errors import broker_errors
from satworks.broker.messages import internal_message
from satworks.jobs.base import JobContext, JobType, Payload

SWEEP_ACTOR = "outbox.sweep"
QUEUE = "default"


class SweepPayload(Payload):
    pass


def request_sweep(ctx: JobContext, payload: SweepPayload) -> dict[str, object]:
    with broker_errors():
        dramatiq.get_broker().enqueue(internal_message(SWEEP_ACTOR, (), ctx.settings.queue_prefix, QUEUE))
    return {"requested": True}


NOTIFY_SWEEP = JobType(
    name="notify.sweep", payload=SweepPayload, run=request_sweep, max_retries=2, max_age_ms=60_000, internal=True
)
