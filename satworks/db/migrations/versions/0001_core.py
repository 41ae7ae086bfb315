"""Apps with hashed API keys, and the job store.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = "('queued', 'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'dead', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.execute("CREATE SEQUENCE jobs_seq")
    op.create_table(
        "jobs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("result", JSONB),
        sa.Column("error_type", sa.String(128)),
        sa.Column("error_message", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("crashes", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("next_retry_at", sa.DateTime(timezone=True)),
        sa.Column("enqueued", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('jobs_seq')")),
        sa.UniqueConstraint("app_id", "idempotency_key", name="jobs_app_idempotency_key"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="jobs_status_valid"),
        sa.CheckConstraint("priority IN ('high', 'normal', 'low')", name="jobs_priority_valid"),
        sa.CheckConstraint("attempts >= 0 AND crashes >= 0 AND max_retries >= 0", name="jobs_counters_valid"),
    )
    op.create_index("jobs_app_listing", "jobs", ["app_id", "seq"])
    op.create_index("jobs_unenqueued", "jobs", ["created_at"], postgresql_where=sa.text("enqueued = 0"))


def downgrade() -> None:
    op.drop_table("jobs")
    op.execute("DROP SEQUENCE jobs_seq")
    op.drop_table("apps")
