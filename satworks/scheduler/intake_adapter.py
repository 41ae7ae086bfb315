"""The scheduler's ``Submit``: one slot's job goes through ``satworks.intake``, like every other job.

The scheduler runs in threads (APScheduler's ``BackgroundScheduler``), the intake is asyncio: this
adapter keeps one event loop in a thread of its own with the intake opened on it, and each
submission waits for its coroutine there. The job is owned by the platform-internal app
``satworks-scheduler`` (``db.apps.ensure_internal``: no usable API key). The run key makes a second
submission of a slot (a restarted leader, two leaders by accident) a replay of the first job.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from satworks.db import apps as apps_db
from satworks.errors import Conflict, DependencyUnavailable, InvalidPayload
from satworks.intake.resources import Intake, open_intake
from satworks.jobs.base import Priority
from satworks.jobs.request import JobIn
from satworks.scheduler.submit import APP_NAME, Submit, Submitted, run_key
from satworks.settings import Settings

SUBMIT_TIMEOUT_S = 30.0  # the intake's own database and broker calls time out well before this


@contextmanager
def submitter(settings: Settings, engine: Engine) -> Iterator[Submit]:
    """The scheduler's ``Submit`` and the intake it holds, for the life of the process."""
    adapter = IntakeSubmit(settings, engine)
    try:
        yield adapter
    finally:
        adapter.close()


class IntakeSubmit:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._app_id: uuid.UUID | None = None
        self._loop = asyncio.new_event_loop()
        self._intake: Future[Intake] = Future()
        self._closing: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="satworks-scheduler-intake", daemon=True)
        self._thread.start()

    def app_id(self) -> uuid.UUID:
        if self._app_id is None:
            self._app_id = apps_db.ensure_internal(self._engine, APP_NAME)
        return self._app_id

    def submit(
        self, task: str, fire_at: datetime, *, job_type: str, payload: Mapping[str, Any], priority: Priority | None
    ) -> Submitted:
        try:
            spec = JobIn.model_validate({"type": job_type, "payload": dict(payload), "priority": priority})
        except ValidationError as exc:  # a task registry entry the intake refuses: a bug, not a retry
            raise InvalidPayload(f"task {task!r} submits an invalid job: {exc}") from exc
        app_id, key = self.app_id(), run_key(task, fire_at)
        try:
            intake = self._intake.result(timeout=SUBMIT_TIMEOUT_S)
            call = asyncio.run_coroutine_threadsafe(intake.jobs.submit(app_id, spec, key, internal=True), self._loop)
            job, replayed = call.result(timeout=SUBMIT_TIMEOUT_S)
        except Conflict as exc:  # the slot's job exists with another body (the task changed): it ran
            return Submitted(uuid.UUID(exc.details["job_id"]), created=False)
        except TimeoutError as exc:
            # A call with no deadline of its own (a wedged RabbitMQ, a TLS Redis): a failed slot like any
            # other, counted and logged by the service. Left to finish, the submission may still record
            # the slot's job; its run key makes any later submission of the slot a replay.
            raise DependencyUnavailable(
                f"the intake did not answer within {SUBMIT_TIMEOUT_S:g} s", details={"dependency": "intake"}
            ) from exc
        return Submitted(job.id, created=not replayed)

    def close(self) -> None:
        if self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._thread.join(timeout=SUBMIT_TIMEOUT_S)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._hold())
        finally:
            self._loop.close()

    async def _hold(self) -> None:
        self._closing = asyncio.Event()
        try:
            async with open_intake(self._settings, pool_size=2, threads=1) as intake:
                self._intake.set_result(intake)
                await self._closing.wait()
        except BaseException as exc:
            if not self._intake.done():
                self._intake.set_exception(exc)
            raise
