"""The platform's audit trail (append-only: a trigger refuses UPDATE, DELETE and TRUNCATE), and a
partial index over finished-badly jobs for the dead-letter listing and gauges.

Revision ID: 0010_audit
Revises: 0006_lightning
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0010_audit"
down_revision = "0006_lightning"
branch_labels = None
depends_on = None

KINDS = "('key_created', 'key_revoked', 'auth_failed', 'job_requeued', 'payment_status_changed')"

REFUSE = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id")),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("subject_id", UUID(as_uuid=True)),
        sa.Column("client_address", sa.String(64)),
        sa.Column("data", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint(f"kind IN {KINDS}", name="audit_events_kind_valid"),
    )
    op.create_index("audit_events_app", "audit_events", ["app_id", "id"])
    op.create_index("audit_events_created", "audit_events", ["created_at"])
    op.execute(REFUSE)
    op.execute(
        "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events"
        " FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )
    op.create_index(
        "jobs_dead_letters",
        "jobs",
        ["seq"],
        postgresql_where=sa.text("status IN ('dead', 'failed')"),
    )


def downgrade() -> None:
    op.drop_index("jobs_dead_letters", table_name="jobs")
    op.drop_table("audit_events")  # drops its triggers
    op.execute("DROP FUNCTION audit_events_append_only()")
