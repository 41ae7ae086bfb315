"""The recurring tasks the scheduler knows: what each submits, and the setting that schedules it.

A task named ``x`` is scheduled by the setting ``SATWORKS_SCHEDULE_X`` (``Settings.schedule_x``, see
``specs.py`` for its forms) and, at each slot, submits one job of ``job_type`` with ``payload``
under the scheduler's own app. To add one: a job type in ``satworks.jobs.catalog``, an entry here,
and a ``schedule_<name>`` setting with its default. The work must be a job type (its job row carries
the slot's idempotency key and outcome): an internal actor without a row, such as ``payments.sweep``,
is scheduled through a job type whose run calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from satworks.jobs.base import Priority
from satworks.scheduler.specs import Schedule, parse
from satworks.settings import Settings


@dataclass(frozen=True)
class ScheduledTask:
    name: str
    job_type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    priority: Priority | None = None  # None: the job type's default
    #: the job's outcome is observed as end-to-end latency (created → finished)
    observe_latency: bool = False


TASKS: dict[str, ScheduledTask] = {
    task.name: task
    for task in (
        # Liveness of the whole path: scheduler → Postgres → broker → worker → Postgres.
        ScheduledTask("canary", job_type="canary", observe_latency=True),
        ScheduledTask("reconcile", job_type="platform.reconcile"),
        ScheduledTask("payments_sweep", job_type="platform.payments_sweep"),
        ScheduledTask("payment_checks", job_type="platform.payment_checks"),
        ScheduledTask("retention", job_type="platform.retention"),
        ScheduledTask("daily_reports", job_type="platform.daily_reports"),
        # The notifications' guarantee: undispatched events, stalled deliveries and emails (jobs/outbox.py).
        ScheduledTask("notify_sweep", job_type="notify.sweep"),
        # Lightning: every open invoice re-read, so nothing waits for a dead stream or a broken check chain.
        ScheduledTask("lightning_sweep", job_type="lightning_sweep"),
        # Draws move without node notifications too: the tip is read and due draws are run.
        ScheduledTask("draws_due", job_type="draws.due"),
    )
}


def setting_name(task: str) -> str:
    return f"schedule_{task}"


def schedules(settings: Settings) -> dict[str, Schedule]:
    """Every task's schedule, parsed (the settings were validated at start-up)."""
    return {name: parse(getattr(settings, setting_name(name))) for name in TASKS}
