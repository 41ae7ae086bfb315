"""Reconciler, retention and reports: job generations, maintenance indexes, broker epochs, reports.

- ``jobs.generation`` (which message may claim the job) and ``jobs.claimed_at`` (the latest claim);
  running rows get ``claimed_at = started_at`` so the reconciler can judge them at once.
- partial indexes holding only what the maintenance tasks read (waiting, running, finished jobs;
  open payment requests) and time indexes for retention. The ones on ``jobs`` are built
  ``CONCURRENTLY`` (outside the migration's transaction), so a large table keeps taking writes.
- ``payment_requests.requeued_at``: throttles the re-sending of stranded requests.
- ``apps.daily_report``; ``reports`` (a finished report's document, one per report job);
  ``broker_epochs`` (the reconciler's sentinel, compared with the broker's copy).

Revision ID: 0004_sched_ops
Revises: 0003_scheduler
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0004_sched_ops"
down_revision = "0003_scheduler"
branch_labels = None
depends_on = None

WAITING = "status IN ('queued', 'retrying', 'scheduled')"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("generation", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("jobs", sa.Column("claimed_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE jobs SET claimed_at = started_at WHERE status = 'running'")
    op.add_column("payment_requests", sa.Column("requeued_at", sa.DateTime(timezone=True)))
    op.add_column("apps", sa.Column("daily_report", sa.Boolean, nullable=False, server_default=sa.text("false")))
    op.create_table(
        "reports",
        sa.Column("id", UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_table(
        "broker_epochs",
        sa.Column("broker", sa.String(32), primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("wiped_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index(
        "payment_requests_open",
        "payment_requests",
        ["created_at"],
        postgresql_where=sa.text("status IN ('creating', 'new', 'processing')"),
    )
    op.create_index("payment_audit_created", "payment_audit", ["created_at"])
    op.create_index("app_events_created", "app_events", ["created_at"])
    op.create_index("webhook_receipts_received", "webhook_receipts", ["received_at"])
    with op.get_context().autocommit_block():
        for statement in (
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_waiting"
            f" ON jobs ((coalesce(next_retry_at, scheduled_for, created_at)), id) WHERE {WAITING}",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_running ON jobs (claimed_at) WHERE status = 'running'",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
        ):
            op.execute(statement)


def downgrade() -> None:
    for index in ("jobs_finished", "jobs_running", "jobs_waiting"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    for index, table in (
        ("webhook_receipts_received", "webhook_receipts"),
        ("app_events_created", "app_events"),
        ("payment_audit_created", "payment_audit"),
        ("payment_requests_open", "payment_requests"),
    ):
        op.drop_index(index, table_name=table)
    op.drop_table("broker_epochs")
    op.drop_table("reports")
    op.drop_column("apps", "daily_report")
    op.drop_column("payment_requests", "requeued_at")
    op.drop_column("jobs", "claimed_at")
    op.drop_column("jobs", "generation")
