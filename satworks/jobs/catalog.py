"""Every job type satworks knows, by name."""

from __future__ import annotations

from satworks.jobs.base import JobType
from satworks.jobs.canary import CANARY
from satworks.jobs.draws import DUE as DRAWS_DUE
from satworks.jobs.lightning_sweep import LIGHTNING_SWEEP
from satworks.jobs.notify_sweep import NOTIFY_SWEEP
from satworks.jobs.platform import PLATFORM_JOB_TYPES

JOB_TYPES: dict[str, JobType] = {
    job.name: job for job in (CANARY, DRAWS_DUE, LIGHTNING_SWEEP, NOTIFY_SWEEP, *PLATFORM_JOB_TYPES)
}
"""App job types, and platform ones (``internal``: submitted by satworks itself, see ``jobs/platform.py``)."""


def max_age_ms(job_type: str, default_ms: int) -> int:
    """How long a due job may wait for a worker before it is dead-lettered."""
    known = JOB_TYPES.get(job_type)
    return (known.max_age_ms if known else None) or default_ms
