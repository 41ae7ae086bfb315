"""The email outbox: one row per email, its content as it will be sent, its state and the last SMTP reply.

A send is claimed with a conditional UPDATE that takes a short ``lease_until`` on a ``queued`` or
``retrying`` row that is due, so two messages for one email never open two sessions at once, and a
row marked ``sent`` (or ``failed``, ``dead``) is never claimed again. The outcome is written only
under the claim's lease (its token).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.db.engine import db_errors
from satworks.db.pages import Page, page_of
from satworks.db.schema import metadata, one_of
from satworks.emails.status import OPEN, EmailStatus

emails = Table(
    "emails",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('emails_seq')")),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("to_addrs", ARRAY(Text), nullable=False),
    Column("subject", Text, nullable=False),
    Column("text_body", Text, nullable=False),
    Column("html_body", Text),
    Column("template", String(64)),
    Column("context", JSONB),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("lease_until", DateTime(timezone=True)),
    Column("first_attempt_at", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("smtp_code", Integer),
    Column("smtp_reply", Text),
    Column("last_error", Text),
    Column("refused", JSONB),  # recipients the server refused while taking the others
    UniqueConstraint("app_id", "idempotency_key", name="emails_app_idempotency_key"),
    CheckConstraint(one_of("status", EmailStatus), name="emails_status_valid"),
    CheckConstraint("cardinality(to_addrs) >= 1", name="emails_recipients"),
    CheckConstraint("attempts >= 0", name="emails_counters"),
    Index("emails_app", "app_id", "seq"),
    Index("emails_app_status", "app_id", "status", "seq"),
    Index("emails_open", "next_attempt_at", postgresql_where=text("status IN ('queued', 'retrying')")),
)


@dataclass(frozen=True)
class NewEmail:
    """An email about to be recorded, already rendered and addressed."""

    id: uuid.UUID
    app_id: uuid.UUID
    to_addrs: list[str]
    subject: str
    text_body: str
    html_body: str | None
    template: str | None
    context: dict[str, Any] | None
    message_id: str
    idempotency_key: str | None
    request_hash: str


@dataclass(frozen=True, slots=True)
class EmailRecord:
    id: uuid.UUID
    app_id: uuid.UUID
    status: EmailStatus
    to_addrs: list[str]
    subject: str
    template: str | None
    message_id: str
    idempotency_key: str | None
    request_hash: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    finished_at: datetime | None
    smtp_code: int | None
    smtp_reply: str | None
    last_error: str | None
    refused: dict[str, Any] | None
    seq: int


_COLUMNS = [emails.c[f.name] for f in dataclasses.fields(EmailRecord)]


def _record(row: Any) -> EmailRecord:
    values = row._asdict()
    values["status"] = EmailStatus(values["status"])
    return EmailRecord(**values)


def _values(new: NewEmail) -> dict[str, Any]:
    return {**dataclasses.asdict(new), "status": EmailStatus.QUEUED}


# --- the intake and the API (async engine) ---------------------------------------------------------------


async def insert_email(engine: AsyncEngine, new: NewEmail) -> EmailRecord | None:
    """Insert and commit; None when the app's idempotency key is taken already (nothing written)."""
    statement = (
        insert(emails)
        .values(**_values(new))
        .on_conflict_do_nothing(index_elements=[emails.c.app_id, emails.c.idempotency_key])
        .returning(*_COLUMNS)
    )
    with db_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(statement)).first()
    return _record(row) if row is not None else None


async def by_idempotency_key(engine: AsyncEngine, app_id: uuid.UUID, key: str) -> EmailRecord | None:
    query = select(*_COLUMNS).where(emails.c.app_id == app_id, emails.c.idempotency_key == key)
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    return _record(row) if row is not None else None


async def delete_unsent(engine: AsyncEngine, email_id: uuid.UUID) -> None:
    """Undo an email whose first message never reached the broker (nothing was attempted)."""
    with db_errors():
        async with engine.begin() as conn:
            await conn.execute(emails.delete().where(emails.c.id == email_id, emails.c.attempts == 0))


async def get(engine: AsyncEngine, app_id: uuid.UUID, email_id: uuid.UUID) -> EmailRecord | None:
    query = select(*_COLUMNS).where(emails.c.id == email_id, emails.c.app_id == app_id)
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    return _record(row) if row is not None else None


async def listing(
    engine: AsyncEngine, app_id: uuid.UUID, *, status: EmailStatus | None, before_seq: int | None, limit: int
) -> Page[EmailRecord]:
    query = select(*_COLUMNS).where(emails.c.app_id == app_id)
    if status is not None:
        query = query.where(emails.c.status == status)
    if before_seq is not None:
        query = query.where(emails.c.seq < before_seq)
    with db_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(emails.c.seq.desc()).limit(limit + 1))).all()
    return page_of([_record(r) for r in rows], limit, lambda e: e.seq)


# --- the dispatcher and the send job (sync engine) ------------------------------------------------------


def insert_if_new(conn: Connection, new: NewEmail) -> uuid.UUID | None:
    """Insert in the caller's transaction; None when the key exists (e.g. a receipt made before)."""
    statement = (
        insert(emails)
        .values(**_values(new))
        .on_conflict_do_nothing(index_elements=[emails.c.app_id, emails.c.idempotency_key])
        .returning(emails.c.id)
    )
    value = conn.execute(statement).scalar()
    return value if isinstance(value, uuid.UUID) else None


@dataclass(frozen=True)
class Sendable:
    """A claimed email: what to send, under which lease (its token)."""

    id: uuid.UUID
    to_addrs: list[str]
    subject: str
    text_body: str
    html_body: str | None
    message_id: str
    attempts: int  # including this one
    first_attempt_at: datetime
    lease: datetime


@dataclass(frozen=True)
class Pending:
    """An email as the send job finds it: due now (open, due and not leased), or why not."""

    status: EmailStatus
    lease_until: datetime | None
    next_attempt_at: datetime
    due: bool = False


def peek(conn: Connection, email_id: uuid.UUID, *, early_s: float = 1.0) -> Pending | None:
    """The email's state, read only (None: no such email)."""
    e = emails.c
    due = (
        e.status.in_(OPEN)
        & (e.next_attempt_at <= func.now() + timedelta(seconds=early_s))
        & (e.lease_until.is_(None) | (e.lease_until < func.now()))
    )
    row = conn.execute(select(e.status, e.lease_until, e.next_attempt_at, due).where(e.id == email_id)).first()
    return Pending(EmailStatus(row[0]), row[1], row[2], bool(row[3])) if row is not None else None


def claim(conn: Connection, email_id: uuid.UUID, *, lease_s: float, early_s: float = 1.0) -> Sendable | Pending | None:
    """Claim one send of an open, due, unleased email; otherwise why not (None: no such email)."""
    e = emails.c
    statement = (
        update(emails)
        .where(
            e.id == email_id,
            e.status.in_(OPEN),
            e.next_attempt_at <= func.now() + timedelta(seconds=early_s),
            e.lease_until.is_(None) | (e.lease_until < func.now()),
        )
        .values(
            lease_until=func.now() + timedelta(seconds=lease_s),
            attempts=e.attempts + 1,
            first_attempt_at=func.coalesce(e.first_attempt_at, func.now()),
            last_attempt_at=func.now(),
        )
        .returning(
            e.id,
            e.to_addrs,
            e.subject,
            e.text_body,
            e.html_body,
            e.message_id,
            e.attempts,
            e.first_attempt_at,
            e.lease_until,
        )
    )
    row = conn.execute(statement).first()
    if row is not None:
        return Sendable(*row)
    state = conn.execute(select(e.status, e.lease_until, e.next_attempt_at).where(e.id == email_id)).first()
    if state is None:
        return None
    return Pending(EmailStatus(state.status), state.lease_until, state.next_attempt_at)


@dataclass(frozen=True)
class SendOutcome:
    status: EmailStatus
    smtp_code: int | None = None
    smtp_reply: str | None = None
    error: str | None = None
    refused: dict[str, Any] | None = None
    next_attempt_at: datetime | None = None


def record(conn: Connection, sent: Sendable, outcome: SendOutcome) -> bool:
    """Write a send's outcome if the claim's lease is still ours; False when it is not (nothing written)."""
    e = emails.c
    finished = outcome.status not in OPEN
    statement = (
        update(emails)
        .where(e.id == sent.id, e.lease_until == sent.lease, e.status.in_(OPEN))
        .values(
            status=outcome.status,
            smtp_code=outcome.smtp_code,
            smtp_reply=outcome.smtp_reply,
            last_error=outcome.error,
            refused=outcome.refused,
            next_attempt_at=outcome.next_attempt_at if outcome.next_attempt_at is not None else e.next_attempt_at,
            finished_at=func.now() if finished else None,
            lease_until=None,
        )
    )
    return bool(conn.execute(statement).rowcount)


def stalled(conn: Connection, older_than: datetime, limit: int) -> list[uuid.UUID]:
    """Open emails overdue since before ``older_than`` with no attempt in flight (their message was lost)."""
    e = emails.c
    query = (
        select(e.id)
        .where(
            e.status.in_(OPEN),
            e.next_attempt_at < older_than,
            e.lease_until.is_(None) | (e.lease_until < func.now()),
        )
        .order_by(e.next_attempt_at)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())
