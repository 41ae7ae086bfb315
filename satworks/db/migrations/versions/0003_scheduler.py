"""The scheduler's state: schedules (one row per task) and schedule_runs (one row per submitted slot).

Revision ID: 0003_scheduler
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003_scheduler"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES = "('queued', 'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'dead', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("task", sa.String(64), primary_key=True),
        sa.Column("spec", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.Column("last_job_id", UUID(as_uuid=True)),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_success_at", sa.DateTime(timezone=True)),
        sa.Column("next_run_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint(f"last_status IS NULL OR last_status IN {STATUSES}", name="schedules_last_status"),
    )
    op.create_table(
        "schedule_runs",
        sa.Column("task", sa.String(64), primary_key=True),
        sa.Column("fire_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("job_id", UUID(as_uuid=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"status IS NULL OR status IN {STATUSES}", name="schedule_runs_status"),
    )
    op.create_index(
        "schedule_runs_pending", "schedule_runs", ["submitted_at"], postgresql_where=sa.text("status IS NULL")
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("schedules")
