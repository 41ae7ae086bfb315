"""Accepting an email: render it, record it in the outbox and enqueue its send, or nothing at all.

Like a payment request: the row is committed, then its first message goes to the broker; if the
broker refuses, the row is deleted again and the caller gets 503. A row whose message was lost
(the process died in between) is sent by the notifications sweep (``jobs/outbox.py``).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.client import BrokerClient
from satworks.db import emails as emails_db
from satworks.db.emails import EmailRecord
from satworks.emails.outbox import Composer
from satworks.emails.request import EmailIn
from satworks.errors import DependencyUnavailable
from satworks.intake import idempotency
from satworks.jobs.emails import send_message


class EmailIntake:
    def __init__(self, engine: AsyncEngine, client: BrokerClient, composer: Composer, *, queue_prefix: str) -> None:
        self._engine = engine
        self._client = client
        self._composer = composer
        self._prefix = queue_prefix

    async def submit(self, app_id: uuid.UUID, spec: EmailIn, idempotency_key: str | None) -> tuple[EmailRecord, bool]:
        """Record and enqueue one email; returns ``(email, replayed)``.

        Raises ``ValidationFailed`` (recipients, template, context; nothing stored), ``Conflict`` (the
        key was used with another body) or ``DependencyUnavailable`` (nothing is left half-done)."""
        if idempotency_key is not None:
            idempotency.check(idempotency_key)
        new = self._composer.compose(app_id, spec, idempotency_key)
        stored = await emails_db.insert_email(self._engine, new)
        if stored is None:  # the key is taken: a replay, or a conflict
            assert idempotency_key is not None
            existing = await emails_db.by_idempotency_key(self._engine, app_id, idempotency_key)
            if existing is None:  # the other request vanished (its first message failed): try again
                raise DependencyUnavailable("concurrent request failed, retry")
            idempotency.check_replay("email", existing.id, existing.request_hash, new.request_hash)
            return existing, True
        enqueued = False
        try:
            await self._client.enqueue([(send_message(stored.id, self._prefix), None)])
            enqueued = True
        finally:
            if not enqueued:  # the broker refused: undo the record
                await emails_db.delete_unsent(self._engine, stored.id)
        return stored, False
