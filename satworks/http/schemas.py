"""Request and response models of the /v1 API; the OpenAPI document is generated from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PaymentList(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None


class PaymentListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: PaymentStatus | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)


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


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    type: str | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


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


def job_document(row: Any, *, queue_prefix: str) -> JobOut:
    error = ErrorInfo(type=row.error_type, message=row.error_message or "") if row.error_type else None
    return JobOut(
        id=row.id,
        type=row.type,
        status=row.status,
        priority=row.priority,
        queue=row.queue.removeprefix(queue_prefix),
        attempts=row.attempts,
        max_retries=row.max_retries,
        payload=row.payload,
        result=row.result,
        error=error,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        scheduled_for=row.scheduled_for,
        started_at=row.started_at,
        finished_at=row.finished_at,
        next_retry_at=row.next_retry_at,
    )


def payment_document(row: Any, txids: list[str]) -> PaymentOut:
    return PaymentOut(
        id=row.id,
        method=row.method,
        status=row.status,
        exception_status=row.exception_status,
        status_reason=row.status_reason,
        amount_sat=row.amount_sat,
        received_sat=row.received_sat,
        required_confirmations=row.required_confirmations,
        confirmations=row.confirmations,
        payment_tolerance=row.tolerance_pct,
        monitoring_s=row.monitoring_s,
        address=row.address,
        txids=txids,
        memo=row.memo,
        metadata=row.metadata,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        expires_at=row.expires_at,
        settled_at=row.settled_at,
    )
