"""Every job type satworks knows, by name."""

from __future__ import annotations

from satworks.jobs.base import JobType
from satworks.jobs.canary import CANARY

JOB_TYPES: dict[str, JobType] = {job.name: job for job in (CANARY,)}
