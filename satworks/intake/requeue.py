"""Giving dead letters a new run: the same job row (same id, attempts kept) and a fresh message.

The row moves back to ``queued`` and its audit row is written in one transaction that commits only
after the broker took the messages (``db.dead_letters.requeued``): a refused enqueue answers 503 and
leaves the jobs dead. The new message carries the job type's retries and age limit afresh.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.client import BrokerClient
from satworks.db import dead_letters as dead_letters_db
from satworks.db.dead_letters import DeadLetterFilter
from satworks.db.jobs import JobRecord
from satworks.intake.batcher import job_item

log = logging.getLogger(__name__)
BULK_MAX = 1000
"""The most jobs one bulk requeue moves (call again for the rest)."""


class DeadLetterRequeue:
    def __init__(self, engine: AsyncEngine, client: BrokerClient, *, default_max_age_ms: int) -> None:
        self._engine = engine
        self._client = client
        self._default_max_age_ms = default_max_age_ms

    async def requeue(self, job_id: uuid.UUID, *, actor: str, client_address: str | None) -> JobRecord:
        """Requeue one dead letter. Raises ``NotFound``, ``Conflict`` (not dead or failed) or
        ``DependencyUnavailable`` (nothing changed)."""
        moved = await self._requeue(DeadLetterFilter(), job_id, 1, actor, client_address)
        return moved[0]

    async def requeue_matching(
        self, which: DeadLetterFilter, *, limit: int, actor: str, client_address: str | None
    ) -> list[JobRecord]:
        """Requeue up to ``limit`` (at most ``BULK_MAX``) dead letters matching ``which``, oldest first."""
        return await self._requeue(which, None, min(limit, BULK_MAX), actor, client_address)

    async def _requeue(
        self, which: DeadLetterFilter, job_id: uuid.UUID | None, limit: int, actor: str, client_address: str | None
    ) -> list[JobRecord]:
        async with dead_letters_db.requeued(
            self._engine, which, job_id=job_id, limit=limit, actor=actor, client_address=client_address
        ) as moved:
            await self._client.enqueue([job_item(job, None, self._default_max_age_ms) for job in moved])
        extra = {"action": "dead_letters_requeued", "count": len(moved), "by": actor}
        log.info("dead letters requeued", extra={**extra, **({"job_id": str(job_id)} if job_id else {})})
        return moved
