"""Job states, defined once: the database's check constraint and the OpenAPI enum come from here."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    #: accepted and in the broker, waiting for a worker
    QUEUED = "queued"
    #: accepted with a run time in the future (``run_at`` / ``delay_seconds``)
    SCHEDULED = "scheduled"
    #: claimed by a worker; a claim that finds it still running counts a crash
    RUNNING = "running"
    #: a run failed transiently; the next one is due at ``next_retry_at``
    RETRYING = "retrying"
    #: finished: the job's function returned
    SUCCEEDED = "succeeded"
    #: finished: a permanent error, never retried
    FAILED = "failed"
    #: finished: retries exhausted, a crash loop, or too old to run
    DEAD = "dead"
    #: finished: cancelled before it started
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED


WAITING = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING})
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD, JobStatus.CANCELLED})


def sql_list(statuses: frozenset[JobStatus] | tuple[JobStatus, ...]) -> str:
    """``('a', 'b')`` for static SQL, in a stable order."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(statuses)) + ")"
