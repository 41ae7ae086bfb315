"""Request and response models of the /v1 API; the OpenAPI document is generated from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from satworks.db.jobs import JobRecord
from satworks.db.payments import PaymentRecord
from satworks.http.pagination import CURSOR_PATTERN
from satworks.jobs.request import JobIn
from satworks.jobs.status import JobStatus
from satworks.payments.status import ExceptionStatus, PaymentStatus

__all__ = ["JobIn"]


class PaymentOut(BaseModel):
    id: uuid.UUID
    method: Literal["onchain"]
    status: PaymentStatus
    exception_status: ExceptionStatus | None
    status_reason: str | None
    amount_sat: int
    received_sat: int
    required_confirmations: int
    confirmations: int
    payment_tolerance: Decimal
    monitoring_s: int
    address: str | None
    txids: list[str]
    memo: str | None
    metadata: dict[str, Any]
    idempotency_key: str | None
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None

    @classmethod
    def from_record(cls, payment: PaymentRecord, txids: list[str]) -> PaymentOut:
        return cls(
            id=payment.id,
            method=payment.method,
            status=payment.status,
            exception_status=payment.exception_status,
            status_reason=payment.status_reason,
            amount_sat=payment.amount_sat,
            received_sat=payment.received_sat,
            required_confirmations=payment.required_confirmations,
            confirmations=payment.confirmations,
            payment_tolerance=payment.tolerance_pct,
            monitoring_s=payment.monitoring_s,
            address=payment.address,
            txids=txids,
            memo=payment.memo,
            metadata=payment.metadata,
            idempotency_key=payment.idempotency_key,
            created_at=payment.created_at,
            expires_at=payment.expires_at,
            settled_at=payment.settled_at,
        )


class PaymentList(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None


class PaymentListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: PaymentStatus | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(
        None, max_length=64, pattern=CURSOR_PATTERN, description="A `next_cursor` from the previous page."
    )


class Accepted(BaseModel):
    accepted: bool = True


class WatcherEvent(BaseModel):
    """A signed event from an outside payment watcher; only the payment id is used."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=255)
    event: str = Field(min_length=1, max_length=64)
    data: dict[str, Any]


class ErrorInfo(BaseModel):
    type: str
    message: str


class JobOut(BaseModel):
    id: uuid.UUID
    type: str
    status: JobStatus
    priority: Literal["high", "normal", "low"]
    queue: str
    attempts: int
    max_retries: int
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: ErrorInfo | None
    idempotency_key: str | None
    created_at: datetime
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    next_retry_at: datetime | None

    @classmethod
    def from_record(cls, job: JobRecord, *, queue_prefix: str) -> JobOut:
        """The job's document; its queue without the deployment's prefix."""
        error = ErrorInfo(type=job.error_type, message=job.error_message or "") if job.error_type else None
        return cls(
            id=job.id,
            type=job.type,
            status=job.status,
            priority=job.priority,
            queue=job.queue.removeprefix(queue_prefix),
            attempts=job.attempts,
            max_retries=job.max_retries,
            payload=job.payload,
            result=job.result,
            error=error,
            idempotency_key=job.idempotency_key,
            created_at=job.created_at,
            scheduled_for=job.scheduled_for,
            started_at=job.started_at,
            finished_at=job.finished_at,
            next_retry_at=job.next_retry_at,
        )


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    type: str | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(
        None, max_length=64, pattern=CURSOR_PATTERN, description="A `next_cursor` from the previous page."
    )


class Problem(BaseModel):
    """One problem with the request's input."""

    loc: list[str | int] = Field(description='Where: e.g. `["payload", "note"]`, `["Idempotency-Key"]`.')
    msg: str
    type: str = Field(description="A stable name of the kind of problem, e.g. `missing`, `unstorable_text`.")


class ErrorDetails(BaseModel):
    """Always an object: ``errors`` lists the input's problems (empty when the input is not at fault);
    other keys depend on the error's ``code``."""

    model_config = ConfigDict(extra="allow")

    errors: list[Problem]
    dependency: str | None = Field(None, description="503: `postgres`, `redis` or `broker`.")
    retry_after_s: int | None = Field(None, description="429: also in `Retry-After`.")
    max_bytes: int | None = Field(None, description="413: the body limit.")
    max_depth: int | None = Field(None, description="400: the JSON nesting limit.")
    known_types: list[str] | None = Field(None, description="422 for an unknown job type.")
    job_id: str | None = Field(None, description="409: the job the idempotency key made.")
    payment_id: str | None = Field(None, description="409: the payment request the key (or address) belongs to.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable name, e.g. `validation_failed`.")
    message: str
    details: ErrorDetails


class ErrorOut(BaseModel):
    error: ErrorBody


class QueueDepth(BaseModel):
    ready: int
    delayed: int
    dead_letter: int


class Stats(BaseModel):
    queues: dict[str, QueueDepth]
    jobs_by_status: dict[str, int]
    jobs_by_type: dict[str, dict[str, int]]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
