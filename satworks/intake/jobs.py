"""Submitting a job: the same path for ``POST /v1/jobs``, ``satworks enqueue`` and the scheduler."""

from __future__ import annotations

import uuid

from satworks.db.jobs import JobRecord
from satworks.intake.batcher import IntakeBatcher
from satworks.jobs.request import JobIn
from satworks.jobs.submission import job_row


class JobIntake:
    def __init__(self, batcher: IntakeBatcher, *, queue_prefix: str) -> None:
        self._batcher = batcher
        self._queue_prefix = queue_prefix

    async def submit(
        self, app_id: uuid.UUID, spec: JobIn, idempotency_key: str | None, *, internal: bool = False
    ) -> tuple[JobRecord, bool]:
        """Validate ``spec`` against its job type, record the job and enqueue it; returns ``(job,
        replayed)`` once both are durable. ``replayed``: the app's earlier job with the same key.
        ``internal``: satworks itself submits (the scheduler, the report route): platform job types
        are allowed.

        Raises ``ValidationFailed`` (nothing is stored), ``Conflict`` (the key was used with another
        body) or ``DependencyUnavailable`` (the database or the broker; nothing is left half-done).
        """
        job, delay_ms = job_row(
            spec, app_id=app_id, idempotency_key=idempotency_key, queue_prefix=self._queue_prefix, internal=internal
        )
        return await self._batcher.submit(job, delay_ms)
