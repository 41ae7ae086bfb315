"""Request and response models of the notification routes: webhook endpoints, deliveries, emails."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from satworks.db.emails import EmailRecord
from satworks.db.webhook_deliveries import AttemptRecord, DeliveryRecord
from satworks.db.webhook_endpoints import EndpointRecord
from satworks.emails.request import EmailIn
from satworks.emails.status import EmailStatus
from satworks.webhooks.events import event_id
from satworks.webhooks.status import DeliveryStatus

__all__ = ["EmailIn"]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="http(s) URL on a public address.")
    events: list[str] = Field(
        min_length=1, max_length=32, description="Event types: exact (`payment.settled`), `family.*` or `*`."
    )


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the secret before the last rotation signs too."
    )

    @classmethod
    def fields_of(cls, endpoint: EndpointRecord) -> dict[str, Any]:
        return {
            "id": endpoint.id,
            "url": endpoint.url,
            "events": endpoint.events,
            "created_at": endpoint.created_at,
            "secret_rotated_at": endpoint.rotated_at,
            "previous_secret_expires_at": endpoint.previous_expires_at,
        }

    @classmethod
    def from_record(cls, endpoint: EndpointRecord) -> EndpointOut:
        return cls(**cls.fields_of(endpoint))


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret. Shown only in this answer: store it now.")

    @classmethod
    def with_secret(cls, endpoint: EndpointRecord, secret: str) -> EndpointWithSecret:
        return cls(**cls.fields_of(endpoint), secret=secret)


class EndpointList(BaseModel):
    items: list[EndpointOut]


class EndpointDeleted(BaseModel):
    deleted: bool = True
    failed_deliveries: int = Field(description="Deliveries still open that were failed with the endpoint.")


class EventRef(BaseModel):
    id: str
    type: str


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event: EventRef
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When the next attempt is due; null once finished.")
    last_attempt_at: datetime | None
    finished_at: datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None

    @classmethod
    def fields_of(cls, d: DeliveryRecord) -> dict[str, Any]:
        return {
            "id": d.id,
            "endpoint_id": d.endpoint_id,
            "event": EventRef(id=event_id(d.event_id), type=d.event_type),
            "status": d.status,
            "attempts": d.attempts,
            "created_at": d.created_at,
            "next_attempt_at": d.next_attempt_at if d.status.is_open else None,
            "last_attempt_at": d.last_attempt_at,
            "finished_at": d.finished_at,
            "last_status_code": d.last_status_code,
            "last_latency_ms": d.last_latency_ms,
            "last_error": d.last_error,
        }

    @classmethod
    def from_record(cls, d: DeliveryRecord) -> DeliveryOut:
        return cls(**cls.fields_of(d))


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    outcome: str = Field(description="`delivered`, `retry` or `failed`.")
    status_code: int | None
    latency_ms: int
    response_head: str = Field(description="The first bytes of the answer's body.")
    error: str | None

    @classmethod
    def from_record(cls, a: AttemptRecord) -> AttemptOut:
        return cls(**{name: getattr(a, name) for name in cls.model_fields})


class DeliveryDetail(DeliveryOut):
    history: list[AttemptOut] = Field(description="The latest 50 attempts, newest first.")

    @classmethod
    def with_history(cls, d: DeliveryRecord, attempts: list[AttemptRecord]) -> DeliveryDetail:
        return cls(**cls.fields_of(d), history=[AttemptOut.from_record(a) for a in attempts])


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class DeliveryListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: DeliveryStatus | None = None
    endpoint_id: uuid.UUID | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)


class EmailOut(BaseModel):
    id: uuid.UUID
    status: EmailStatus
    to: list[str]
    subject: str
    template: str | None
    message_id: str
    attempts: int
    idempotency_key: str | None
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When the next send is due; null once finished.")
    last_attempt_at: datetime | None
    finished_at: datetime | None
    smtp_code: int | None = Field(description="The last reply's code (the answer to DATA once sent).")
    smtp_reply: str | None
    last_error: str | None
    refused: dict[str, Any] | None = Field(description="Recipients refused while the others were accepted.")

    @classmethod
    def from_record(cls, e: EmailRecord) -> EmailOut:
        return cls(
            id=e.id,
            status=e.status,
            to=e.to_addrs,
            subject=e.subject,
            template=e.template,
            message_id=e.message_id,
            attempts=e.attempts,
            idempotency_key=e.idempotency_key,
            created_at=e.created_at,
            next_attempt_at=e.next_attempt_at if e.status in (EmailStatus.QUEUED, EmailStatus.RETRYING) else None,
            last_attempt_at=e.last_attempt_at,
            finished_at=e.finished_at,
            smtp_code=e.smtp_code,
            smtp_reply=e.smtp_reply,
            last_error=e.last_error,
            refused=e.refused,
        )


class EmailList(BaseModel):
    items: list[EmailOut]
    next_cursor: str | None


class EmailListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: EmailStatus | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)
