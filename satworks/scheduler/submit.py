"""What the scheduler needs from the platform: submit one run of a task as a job, at most once per slot.

The run's idempotency key is the task and its slot, so a second submission of the same slot (a
restarted leader, or two leaders by accident) returns the job the first one made instead of
making another. ``intake_adapter.IntakeSubmit`` implements it on ``satworks.intake``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from satworks.jobs.base import Priority

APP_NAME = "satworks-scheduler"
"""The platform-internal app that owns every scheduled job; it has no usable API key."""


@dataclass(frozen=True)
class Submitted:
    job_id: uuid.UUID
    #: False: the slot had been submitted before, ``job_id`` is that job
    created: bool


class Submit(Protocol):
    def submit(
        self, task: str, fire_at: datetime, *, job_type: str, payload: Mapping[str, Any], priority: Priority | None
    ) -> Submitted:
        """Record and enqueue the job of ``task``'s slot ``fire_at``, or return the one recorded already.

        Raises ``DependencyUnavailable`` when the job could not be recorded (nothing was stored).
        """
        ...


def run_key(task: str, fire_at: datetime) -> str:
    """``schedule:<task>:<slot in UTC, RFC 3339, whole seconds>``, e.g. ``schedule:canary:2024-05-01T03:00:00Z``."""
    return f"schedule:{task}:{fire_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
