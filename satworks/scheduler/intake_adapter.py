"""Today's ``Submit``: record the run's job with its idempotency key and enqueue it, as the intake does.

This is the one module to replace when job submission moves to ``satworks.intake``: the scheduler
sees only the ``Submit`` protocol, and gets it from ``submitter``. The job is owned by the
platform-internal app ``satworks-scheduler``, created here on first use with no usable API key: its
``key_id`` is not the 12 characters every key names, so no key can look it up, its hash is no
SHA-256 digest, and it has no scopes.

A slot submitted before (same app and idempotency key) is not inserted or enqueued again: its job id
is returned. A job committed whose message could not reach the broker stays ``enqueued = 0`` and is
handed to the broker by the intake's ``requeue_stranded``, like any job whose submitter died there.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.errors import DramatiqError
from pika.exceptions import AMQPError
from redis.exceptions import RedisError
from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from satworks.db import jobs as q
from satworks.db.engine import db_errors
from satworks.db.schema import apps, jobs
from satworks.errors import Conflict, DependencyUnavailable
from satworks.jobs.base import Priority
from satworks.jobs.catalog import max_age_ms
from satworks.jobs.request import JobIn
from satworks.jobs.submission import job_row
from satworks.scheduler.submit import APP_NAME, Submit, Submitted, run_key
from satworks.settings import Settings
from satworks.workers.broker import build_broker, enqueue_many, job_message

log = logging.getLogger(__name__)
INTERNAL_KEY_ID = "internal-satworks-scheduler"
NO_KEY_HASH = "-" * 64  # never a hex digest: no secret verifies against it


@contextmanager
def submitter(settings: Settings, engine: Engine) -> Iterator[Submit]:
    """The scheduler's ``Submit`` and the resources it holds, for the life of the process."""
    broker = build_broker(settings)
    try:
        yield JobStoreSubmit(settings, engine, broker)
    finally:
        broker.close()


class JobStoreSubmit:
    def __init__(self, settings: Settings, engine: Engine, broker: dramatiq.Broker) -> None:
        self._settings = settings
        self._engine = engine
        self._broker = broker
        self._app_id: uuid.UUID | None = None

    def app_id(self) -> uuid.UUID:
        """The internal app's id, creating the app once (concurrent schedulers agree on one row)."""
        if self._app_id is None:
            with db_errors(), self._engine.begin() as conn:
                conn.execute(
                    insert(apps)
                    .values(id=uuid.uuid4(), name=APP_NAME, key_id=INTERNAL_KEY_ID, key_hash=NO_KEY_HASH, scopes=[])
                    .on_conflict_do_nothing()
                )
                row = conn.execute(select(apps.c.id, apps.c.key_id).where(apps.c.name == APP_NAME)).one()
            if row.key_id != INTERNAL_KEY_ID:
                raise Conflict(f"an app named {APP_NAME!r} exists with an API key; the scheduler needs that name")
            self._app_id = row.id
        return self._app_id

    def submit(
        self, task: str, fire_at: datetime, *, job_type: str, payload: Mapping[str, Any], priority: Priority | None
    ) -> Submitted:
        app_id = self.app_id()
        key = run_key(task, fire_at)
        spec = JobIn.model_validate({"type": job_type, "payload": dict(payload), "priority": priority})
        row, delay_ms = job_row(spec, app_id=app_id, idempotency_key=key, queue_prefix=self._settings.queue_prefix)
        with db_errors(), self._engine.begin() as conn:
            inserted = conn.execute(q.insert_many(), row).first()
            if inserted is None:
                existing = conn.execute(
                    select(jobs.c.id).where(jobs.c.app_id == app_id, jobs.c.idempotency_key == key)
                ).scalar_one()
                return Submitted(existing, created=False)
        age = max_age_ms(row["type"], self._settings.default_max_age_ms)
        message = job_message(
            row["id"], row["type"], row["queue"], row["max_retries"], delay_ms=delay_ms, max_age_ms=age
        )
        try:
            enqueue_many(self._broker, [(message, delay_ms)])
        except (RedisError, DramatiqError, AMQPError, OSError):
            log.warning(
                "scheduled job recorded but not enqueued; the intake requeues it",
                extra={"action": "schedule_enqueue_failed", "task": task, "job_id": str(row["id"])},
            )
            return Submitted(row["id"], created=True)
        try:
            with db_errors(), self._engine.begin() as conn:
                conn.execute(q.mark_enqueued([row["id"]]))
        except DependencyUnavailable:  # it is in the broker; the requeue may send it again (harmless)
            log.warning("could not mark a scheduled job enqueued", extra={"action": "mark_enqueued_failed"})
        return Submitted(row["id"], created=True)
