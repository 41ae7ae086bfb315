"""Table definitions (SQLAlchemy Core). Alembic migrations create them; queries are built from them."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from satworks.audit import AuditKind
from satworks.jobs.status import JobStatus
from satworks.payments.status import ExceptionStatus, PaymentStatus, TxState

metadata = MetaData()


def one_of(column: str, values: type[StrEnum]) -> str:
    """A check-constraint expression generated from an enum: ``column IN ('a', 'b', ...)``."""
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


apps = Table(
    "apps",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("rate_limit_per_minute", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("revoked_at", DateTime(timezone=True)),
    Column("daily_report", Boolean, nullable=False, server_default=text("false")),
    Column("report_email", Text),  # where the daily report is emailed (0011_report_email)
    # A name belongs to one active app; a revoked app's name may be given again (0008_hardening).
    Index("apps_active_name", "name", unique=True, postgresql_where=text("revoked_at IS NULL")),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("priority", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("result", JSONB),
    Column("error_type", String(128)),
    Column("error_message", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("crashes", Integer, nullable=False, server_default=text("0")),
    Column("max_retries", Integer, nullable=False),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("scheduled_for", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("next_retry_at", DateTime(timezone=True)),
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('jobs_seq')")),
    # Which of the job's messages may claim it: the reconciler bumps it when it sends a new message,
    # so a message it replaced (still held by a worker after a broker wipe) can no longer run the job.
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("claimed_at", DateTime(timezone=True)),  # the latest claim (``started_at`` is the first)
    # The latest attempt known to have begun running; NULL on rows older than migration 0015 ("started").
    Column("started_attempt", Integer, server_default=text("0")),
    UniqueConstraint("app_id", "idempotency_key", name="jobs_app_idempotency_key"),
    CheckConstraint(one_of("status", JobStatus), name="jobs_status_valid"),
    CheckConstraint("priority IN ('high', 'normal', 'low')", name="jobs_priority_valid"),
    CheckConstraint("attempts >= 0 AND crashes >= 0 AND max_retries >= 0", name="jobs_counters_valid"),
    Index("jobs_app_listing", "app_id", "seq"),
)

jobs_unenqueued = Table(
    "jobs_unenqueued",
    metadata,
    # A job committed whose message may not be in the broker yet: written by the intake's INSERT,
    # deleted once the broker has the message (``db/jobs.py``). No foreign key, on purpose (migration 0014).
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),  # the job's
)

payment_requests = Table(
    "payment_requests",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("method", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("exception_status", String(16)),
    Column("status_reason", Text),
    Column("amount_sat", BigInteger, nullable=False),
    Column("received_sat", BigInteger, nullable=False, server_default=text("0")),
    Column("required_confirmations", Integer, nullable=False),
    Column("confirmations", Integer, nullable=False, server_default=text("0")),
    Column("tolerance_pct", Numeric(5, 2), nullable=False, server_default=text("0")),
    Column("monitoring_s", Integer, nullable=False),
    Column("address", String(100), unique=True),
    Column("address_supplied", Boolean, nullable=False),
    Column("memo", Text),
    Column("metadata", JSONB, nullable=False),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True)),
    Column("checked_at", DateTime(timezone=True)),
    Column("checks", Integer, nullable=False, server_default=text("0")),
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('payment_requests_seq')")),
    Column("requeued_at", DateTime(timezone=True)),  # when a stranded request's message was last sent again
    Column("receipt_email", Text),  # sent a payment_settled email when it settles (db/outbox.py)
    # Lightning (method "lightning"): the invoice the app shows, and exactly what arrived (db/lightning.py).
    Column("payment_request", Text),
    Column("payment_hash", String(64), unique=True),
    Column("received_msat", BigInteger),
    UniqueConstraint("app_id", "idempotency_key", name="payments_app_idempotency_key"),
    CheckConstraint(one_of("status", PaymentStatus), name="payments_status_valid"),
    CheckConstraint(
        f"exception_status IS NULL OR {one_of('exception_status', ExceptionStatus)}", name="payments_exception_valid"
    ),
)

payment_txs = Table(
    "payment_txs",
    metadata,
    Column("txid", String(64), primary_key=True),
    Column("vout", Integer, primary_key=True),
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payment_requests.id"), nullable=False),
    Column("amount_sat", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("confirmations", Integer, nullable=False),
    Column("block_hash", String(64)),
    Column("block_height", Integer),
    Column("replaceable", Boolean, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(one_of("state", TxState), name="payment_txs_state"),
)

payment_audit = Table(
    "payment_audit",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payment_requests.id"), nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("exception_status", String(16)),
    Column("received_sat", BigInteger, nullable=False),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

app_events = Table(
    "app_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("subject_id", UUID(as_uuid=True), nullable=False),
    Column("data", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("delivered_at", DateTime(timezone=True)),  # fanned out into webhook deliveries (db/outbox.py)
)

chain_cursors = Table(
    "chain_cursors",
    metadata,
    Column("node", String(32), primary_key=True),
    Column("block_hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

webhook_receipts = Table(
    "webhook_receipts",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)


# The maintenance tasks' bookkeeping (migration 0013): one narrow row per waiting, running, dead or
# failed job, kept by triggers on ``jobs``, so no index of ``jobs`` names a column its claims and
# outcomes change and those updates stay HOT. Each partial index holds only the rows its task reads, so
# a run with nothing to do reads a page or two whatever the size of ``jobs``.
job_watch = Table(
    "job_watch",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("app_id", UUID(as_uuid=True), nullable=False),
    Column("state", String(16), nullable=False),  # waiting | running | dead | failed
    Column("at", DateTime(timezone=True)),  # due | latest claim | finished (as in the jobs row)
    Column("seq", BigInteger, nullable=False),  # the job's seq: dead letters are listed by it
    CheckConstraint("state IN ('waiting', 'running', 'dead', 'failed')", name="job_watch_state_valid"),
)
Index("job_watch_waiting", job_watch.c.at, job_watch.c.id, postgresql_where=text("state = 'waiting'"))
Index("job_watch_running", job_watch.c.at, postgresql_where=text("state = 'running'"))
Index("job_watch_dead_letters", job_watch.c.seq, postgresql_where=text("state IN ('dead', 'failed')"))
Index("job_watch_listing", job_watch.c.app_id, job_watch.c.state, job_watch.c.seq)
Index("jobs_created", jobs.c.created_at)  # retention's candidates: created_at never changes
Index(
    "payment_requests_open",
    payment_requests.c.created_at,
    postgresql_where=text("status IN ('creating', 'new', 'processing')"),
)
# Migration 0012: the payments listing (also filtered on a status) and what a sweep reads
# (bench/cost_curves.py showed each cost growing with the table without them).
Index("payment_requests_app_listing", payment_requests.c.app_id, payment_requests.c.seq)
Index(
    "payment_requests_app_status_listing",
    payment_requests.c.app_id,
    payment_requests.c.status,
    payment_requests.c.seq,
)
Index(
    "payment_requests_sweep",
    payment_requests.c.status,
    payment_requests.c.expires_at,
    postgresql_where=text("status IN ('new', 'processing')"),
)
Index("payment_txs_payment", payment_txs.c.payment_id)
Index("payment_txs_open", payment_txs.c.payment_id, postgresql_where=text("state <> 'confirmed'"))
Index("payment_txs_height", payment_txs.c.block_height)
Index("payment_audit_created", payment_audit.c.created_at)
Index("app_events_created", app_events.c.created_at)
Index("webhook_receipts_received", webhook_receipts.c.received_at)
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id")),
    Column("actor", String(64), nullable=False),
    Column("subject_id", UUID(as_uuid=True)),
    Column("client_address", String(64)),
    Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(one_of("kind", AuditKind), name="audit_events_kind_valid"),
)
"""Append-only (a trigger refuses UPDATE, DELETE and TRUNCATE): ``satworks.db.audit``."""
