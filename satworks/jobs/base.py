"""Job types and their run-time policy, declared once and shared by intake and workers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from satworks.settings import Settings

Priority = Literal["high", "normal", "low"]
QUEUE_BY_PRIORITY: dict[str, str] = {"high": "critical", "normal": "default", "low": "bulk"}
QUEUES = tuple(QUEUE_BY_PRIORITY.values())


def queue_name(priority: str, prefix: str) -> str:
    return prefix + QUEUE_BY_PRIORITY[priority]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class JobContext:
    """What a running job knows about itself; resources come from ``settings``."""

    job_id: uuid.UUID
    attempt: int
    settings: Settings


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
