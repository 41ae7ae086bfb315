"""Every job type satworks knows, by name."""

from __future__ import annotations

from satworks.jobs.base import JobType
from satworks.jobs.canary import CANARY
from satworks.jobs.draws import DUE as DRAWS_DUE

JOB_TYPES: dict[str, JobType] = {job.name: job for job in (CANARY, DRAWS_DUE)}


def max_age_ms(job_type: str, default_ms: int) -> int:
    """How long a due job may wait for a worker before it is dead-lettered."""
    known = JOB_TYPES.get(job_type)
    return (known.max_age_ms if known else None) or default_ms
