"""Raffle draws: draws, their frozen entries, the one result per draw, the audit trail.

Revision ID: 0005_draws
Revises: 0010_audit

Triggers keep what the commitment covers from ever changing, a final draw from ever being updated
and a result or a set of frozen entries from ever being rewritten (docs/draws.md, "Storage").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0005_draws"
down_revision = "0010_audit"
branch_labels = None
depends_on = None

STATUSES = "('committed', 'waiting', 'confirming', 'completed', 'refused')"
OPEN = "('committed', 'confirming', 'waiting')"
FROZEN_COLUMNS = (
    "id",
    "app_id",
    "raffle_id",
    "algorithm",
    "commitment",
    "network",
    "beacon_height",
    "required_confirmations",
    "k",
    "entries_count",
    "total_tickets",
    "metadata",
    "notify",
    "public_token",
    "idempotency_key",
    "request_hash",
    "created_at",
)


def upgrade() -> None:
    op.execute("CREATE SEQUENCE draws_seq")
    op.create_table(
        "draws",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("raffle_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("network", sa.String(16), nullable=False),
        sa.Column("beacon_height", sa.BigInteger, nullable=False),
        sa.Column("required_confirmations", sa.Integer, nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("entries_count", sa.Integer, nullable=False),
        sa.Column("total_tickets", sa.BigInteger, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("notify", sa.Boolean, nullable=False),
        sa.Column("public_token", sa.String(32), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("block_hash", sa.String(64)),
        sa.Column("block_confirmations", sa.Integer),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("checked_tip", sa.BigInteger),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('draws_seq')")),
        sa.UniqueConstraint("app_id", "idempotency_key", name="draws_app_idempotency_key"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="draws_status_valid"),
        sa.CheckConstraint("beacon_height BETWEEN 0 AND 4294967295", name="draws_height_valid"),
        sa.CheckConstraint("required_confirmations >= 1", name="draws_confirmations_valid"),
        sa.CheckConstraint(
            "k >= 1 AND k <= entries_count AND total_tickets >= entries_count", name="draws_counts_valid"
        ),
        sa.CheckConstraint("(status = 'completed') = (completed_at IS NOT NULL)", name="draws_completed_at"),
        sa.CheckConstraint(
            "status NOT IN ('confirming', 'completed') OR block_hash IS NOT NULL", name="draws_block_when_seen"
        ),
    )
    op.create_index("draws_app_listing", "draws", ["app_id", "seq"])
    op.create_index("draws_app_raffle_listing", "draws", ["app_id", "raffle_id", "seq"])
    op.create_index("draws_open", "draws", ["network", "beacon_height"], postgresql_where=sa.text(f"status IN {OPEN}"))
    op.create_table(
        "draw_entries",
        sa.Column("draw_id", UUID(as_uuid=True), sa.ForeignKey("draws.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("entries", sa.LargeBinary, nullable=False),
        sa.Column("emails", sa.LargeBinary),
        sa.Column("emails_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "draw_results",
        sa.Column("draw_id", UUID(as_uuid=True), sa.ForeignKey("draws.id"), primary_key=True),
        sa.Column("block_hash", sa.String(64), nullable=False),
        sa.Column("confirmations", sa.Integer, nullable=False),
        sa.Column("winners", JSONB, nullable=False),
        sa.Column("proof_gz", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    # Already compressed: TOAST need not try again.
    for table, column in (("draw_entries", "entries"), ("draw_entries", "emails"), ("draw_results", "proof_gz")):
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")
    op.create_table(
        "draw_audit",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "draw_id", UUID(as_uuid=True), sa.ForeignKey("draws.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("block_hash", sa.String(64)),
        sa.Column("confirmations", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN_COLUMNS)
    op.execute(
        f"""
        CREATE FUNCTION draws_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status IN ('completed', 'refused') THEN
                RAISE EXCEPTION 'draw % is final (%) and never changes', OLD.id, OLD.status
                    USING ERRCODE = 'check_violation';
            END IF;
            IF {changed} THEN
                RAISE EXCEPTION 'what the commitment of draw % covers never changes', OLD.id
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute("CREATE TRIGGER draws_frozen BEFORE UPDATE ON draws FOR EACH ROW EXECUTE FUNCTION draws_frozen()")
    op.execute(
        """
        CREATE FUNCTION draw_rows_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'rows of % are written once and never changed', TG_TABLE_NAME
                USING ERRCODE = 'check_violation';
        END $$
        """
    )
    for table in ("draw_entries", "draw_results"):
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION draw_rows_immutable()"
        )


def downgrade() -> None:
    for table in ("draw_audit", "draw_results", "draw_entries", "draws"):
        op.drop_table(table)
    op.execute("DROP FUNCTION draw_rows_immutable()")
    op.execute("DROP FUNCTION draws_frozen()")
    op.execute("DROP SEQUENCE draws_seq")
