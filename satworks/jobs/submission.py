"""Turning a validated job request into the job that is stored and the delay it is enqueued with.

Used by ``satworks.intake.jobs.JobIntake``, the one way jobs are submitted (HTTP, CLI, scheduler).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from satworks import clock, ids
from satworks.db.jobs import NewJob, rows_json
from satworks.errors import ValidationFailed
from satworks.intake import idempotency
from satworks.jobs.base import queue_name
from satworks.jobs.catalog import JOB_TYPES
from satworks.jobs.request import MAX_DELAY_S, JobIn
from satworks.jobs.status import JobStatus

_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)
"""``json.dumps(..., sort_keys=True, default=str)``, byte for byte (stored request hashes depend on it),
without building an encoder per request."""
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # a JSON \u0000 escape, not an escaped backslash before "u0000"


def validation_details(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def job_row(
    spec: JobIn, *, app_id: uuid.UUID, idempotency_key: str | None, queue_prefix: str, internal: bool = False
) -> tuple[NewJob, int | None]:
    """``(job, delay_ms)``: the job to insert and the delay to enqueue it with. ``internal``: the
    caller is satworks itself, which may submit platform job types.

    Raises ``ValidationFailed`` for an unknown type, a bad payload, a far ``run_at`` or U+0000."""
    job_type = JOB_TYPES.get(spec.type)
    if job_type is None or (job_type.internal and not internal):
        allowed = sorted(name for name, known in JOB_TYPES.items() if internal or not known.internal)
        raise ValidationFailed(f"unknown job type {spec.type!r}", details={"known_types": allowed})
    try:
        payload = job_type.payload.model_validate(spec.payload)
    except ValidationError as exc:
        raise ValidationFailed(
            f"invalid {spec.type} payload", details=validation_details(exc, prefix=("payload",))
        ) from exc
    now = clock.utcnow()
    scheduled_for = spec.run_at or (now + timedelta(seconds=spec.delay_seconds) if spec.delay_seconds else None)
    if scheduled_for is not None and scheduled_for > now + timedelta(seconds=MAX_DELAY_S):
        raise ValidationFailed("run_at is more than 7 days ahead", details=[{"loc": ["run_at"]}])
    delay_ms = int((scheduled_for - now).total_seconds() * 1000) if scheduled_for else 0
    priority = spec.priority or job_type.default_priority
    max_retries = job_type.max_retries if spec.max_retries is None else spec.max_retries
    stored = payload.model_dump(mode="json")
    if idempotency_key is None:
        # The hash is read only to tell a replay of a key from a reuse: without a key, nothing to compare.
        request_hash = ""
        _refuse_nul(rows_json([stored]))  # the payload as the batch INSERT will send it
    else:
        schedule = spec.run_at.isoformat() if spec.run_at else spec.delay_seconds
        canonical = _CANONICAL.encode([spec.type, stored, priority, max_retries, schedule])
        _refuse_nul(canonical)
        idempotency.check(idempotency_key)
        request_hash = hashlib.sha256(canonical.encode()).hexdigest()
    job = NewJob(
        id=ids.uuid4(),
        app_id=app_id,
        type=job_type.name,
        queue=queue_name(priority, queue_prefix),
        priority=priority,
        status=JobStatus.SCHEDULED if delay_ms > 0 else JobStatus.QUEUED,
        payload=stored,
        max_retries=max_retries,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_at=now,
        scheduled_for=scheduled_for if delay_ms > 0 else None,
    )
    return job, (delay_ms if delay_ms > 0 else None)


def _refuse_nul(document: str) -> None:
    """Postgres text and jsonb cannot hold U+0000: refused here, it is this request's 422 rather than a
    failed INSERT for every request that shares its batch. ``document``: JSON (every encoder used here
    writes U+0000 as the escape ``\\u0000``)."""
    if "u0000" in document and _NUL_ESCAPE.search(document):
        raise ValidationFailed("the payload must not contain U+0000", details=[{"loc": ["payload"]}])
