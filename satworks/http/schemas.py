"""Request and response models of the /v1 API; the OpenAPI document is generated from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from satworks.audit import AuditKind
from satworks.db.audit import AuditEntry
from satworks.db.dead_letters import DeadLetter
from satworks.db.jobs import JobRecord
from satworks.db.payments import PaymentRecord
from satworks.db.reports import ReportRecord
from satworks.http.pagination import CURSOR_PATTERN
from satworks.jobs.request import JobIn
from satworks.jobs.status import JobStatus
from satworks.payments.status import ExceptionStatus, PaymentStatus
from satworks.reports.spec import ReportSpec

__all__ = ["JobIn", "ReportSpec"]


class PaymentOut(BaseModel):
    id: uuid.UUID
    method: Literal["onchain", "lightning"]
    status: PaymentStatus
    exception_status: ExceptionStatus | None
    status_reason: str | None
    amount_sat: int
    received_sat: int = Field(
        description="Whole satoshis received (Lightning: `received_msat` // 1000, never rounded up)."
    )
    received_msat: int | None = Field(
        description="Lightning: exactly what arrived, in millisatoshis (it may hold a fraction of a satoshi)."
        " Null on-chain."
    )
    payment_request: str | None = Field(description="Lightning: the BOLT11 invoice to pay, once lnd made it.")
    payment_hash: str | None = Field(description="Lightning: the invoice's payment hash (hex).")
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
    receipt_email: str | None = None

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
            received_msat=payment.received_msat,
            payment_request=payment.payment_request,
            payment_hash=payment.payment_hash,
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
            receipt_email=payment.receipt_email,
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
    def document(cls, job: JobRecord, *, queue_prefix: str) -> dict[str, Any]:
        """The job's document as this model describes it (its queue without the deployment's prefix),
        built as a dict and not validated: its values are the stored record's, already of the model's
        types. Half the cost of a model on the intake's hottest path; ``json_response`` serialises it.
        ``tests/unit/test_job_documents.py`` holds it to the model."""
        return {
            "id": job.id,
            "type": job.type,
            "status": job.status,
            "priority": job.priority,
            "queue": job.queue.removeprefix(queue_prefix),
            "attempts": job.attempts,
            "max_retries": job.max_retries,
            "payload": job.payload,
            "result": job.result,
            "error": {"type": job.error_type, "message": job.error_message or ""} if job.error_type else None,
            "idempotency_key": job.idempotency_key,
            "created_at": job.created_at,
            "scheduled_for": job.scheduled_for,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "next_retry_at": job.next_retry_at,
        }


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


class ScheduleOut(BaseModel):
    task: str
    spec: str = Field(description="`off`, `interval:<s>` or `cron:<5 fields, UTC>` (SATWORKS_SCHEDULE_<TASK>).")
    enabled: bool
    last_run: datetime | None = Field(description="The slot of the latest submitted run.")
    last_status: JobStatus | None = Field(description="The outcome of the run that finished last.")
    last_success: datetime | None = Field(description="When the latest successful run finished.")
    next_run: datetime | None
    last_job_id: uuid.UUID | None


class ScheduleList(BaseModel):
    items: list[ScheduleOut]
    leader: str | None = Field(description="The scheduler instance holding the leader lock, if any.")


class ReportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: uuid.UUID
    status: JobStatus = Field(description="The report job's status: `succeeded` means it can be downloaded.")
    kind: str
    format: str
    start: datetime = Field(alias="from", description="Start of the period, included.")
    to: datetime
    all_apps: bool
    error: ErrorInfo | None
    created_at: datetime
    finished_at: datetime | None
    content_type: str | None
    filename: str | None
    size_bytes: int | None
    download: str | None = Field(description="Where the document is, once built.")

    @classmethod
    def from_record(cls, report: ReportRecord) -> ReportOut:
        spec = report.spec
        error = ErrorInfo(type=report.error_type, message=report.error_message or "") if report.error_type else None
        return cls(
            id=report.id,
            status=report.job_status,
            kind=spec["kind"],
            format=spec.get("format", "csv"),
            start=spec["from"],
            to=spec["to"],
            all_apps=bool(spec.get("all_apps", False)),
            error=error,
            created_at=report.created_at,
            finished_at=report.finished_at,
            content_type=report.content_type,
            filename=report.filename,
            size_bytes=report.size_bytes,
            download=f"/v1/reports/{report.id}/download" if report.filename else None,
        )


# --- operators: dead letters and the audit trail (admin) -------------------------------------------------

Queue = Literal["critical", "default", "bulk"]
DeadStatus = Literal["dead", "failed"]


class DeadLetterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: Queue | None = None
    type: str | None = Field(None, max_length=64)
    app: str | None = Field(None, max_length=64, description="An app's name.")
    status: DeadStatus | None = Field(None, description="`dead` or `failed`; both when absent.")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)


class DeadLetterOut(BaseModel):
    id: uuid.UUID
    app: str
    type: str
    queue: str
    status: JobStatus
    attempts: int
    max_retries: int
    error: ErrorInfo | None = Field(description="The last run's error.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, letter: DeadLetter, *, queue_prefix: str) -> DeadLetterOut:
        job = letter.job
        error = ErrorInfo(type=job.error_type, message=job.error_message or "") if job.error_type else None
        return cls(
            id=job.id,
            app=letter.app,
            type=job.type,
            queue=job.queue.removeprefix(queue_prefix),
            status=job.status,
            attempts=job.attempts,
            max_retries=job.max_retries,
            error=error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class DeadLetterList(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class RequeueMatchingIn(BaseModel):
    """A bulk requeue: every filter is optional; ``dry_run`` (the default) only counts."""

    model_config = ConfigDict(extra="forbid")

    queue: Queue | None = None
    type: str | None = Field(None, max_length=64)
    app: str | None = Field(None, max_length=64)
    status: DeadStatus | None = None
    dry_run: bool = True
    limit: int = Field(100, ge=1, le=1000, description="At most this many jobs are requeued per call.")


class RequeueMatchingOut(BaseModel):
    dry_run: bool
    matched: int = Field(description="Dead letters matching the filter before this call.")
    requeued: int
    job_ids: list[uuid.UUID]


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime | None = Field(None, description="RFC 3339 with an offset, e.g. 2026-01-01T00:00:00Z.")
    kind: AuditKind | None = None
    app: str | None = Field(None, max_length=64, description="An app's name.")
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)


class AuditOut(BaseModel):
    id: int
    kind: AuditKind
    app: str | None
    actor: str
    subject_id: uuid.UUID | None
    client_address: str | None
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            id=entry.id,
            kind=entry.kind,
            app=entry.app,
            actor=entry.actor,
            subject_id=entry.subject_id,
            client_address=entry.client_address,
            data=entry.data,
            created_at=entry.created_at,
        )


class AuditList(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")
