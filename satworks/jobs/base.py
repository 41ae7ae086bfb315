"""Job types and their run-time policy, declared once and shared by intake and workers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from satworks.errors import PermanentError
from satworks.settings import Settings

if TYPE_CHECKING:
    from satworks.jobs.resources import WorkerResources

Priority = Literal["high", "normal", "low"]
QUEUE_BY_PRIORITY: dict[str, str] = {"high": "critical", "normal": "default", "low": "bulk"}
QUEUES = tuple(QUEUE_BY_PRIORITY.values())


def queue_name(priority: str, prefix: str) -> str:
    return prefix + QUEUE_BY_PRIORITY[priority]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoPayload(Payload):
    """For job types that take no input (scheduled platform work: settings and data say what to do)."""


@dataclass(frozen=True)
class JobContext:
    """What a running job knows about itself; app jobs' resources come from ``settings``, platform
    jobs use the worker's (``resources``)."""

    job_id: uuid.UUID
    attempt: int
    settings: Settings
    resources: WorkerResources | None = None

    def worker(self) -> WorkerResources:
        """The worker's resources; raises ``PermanentError`` where none were given (not in a worker)."""
        if self.resources is None:
            raise PermanentError("this job type runs only in a satworks worker (it needs the worker's resources)")
        return self.resources


@dataclass(frozen=True)
class JobType:
    """A job type and its policy; backoff: ``min_backoff_ms * 2**retries``, jittered (docs/algorithms.md)."""

    name: str
    payload: type[Payload]
    run: Callable[[JobContext, Any], dict[str, Any] | None]
    default_priority: Priority = "normal"
    max_retries: int = 5
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 5 * 60_000
    time_limit_ms: int | None = None
    max_age_ms: int | None = None
    #: platform work (``satworks.jobs.platform``): the intake takes it from satworks itself, never
    #: from an app's ``POST /v1/jobs``
    internal: bool = False
