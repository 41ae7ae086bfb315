"""On-chain payment requests, their transactions, audit trail, app events, chain cursor, webhook receipts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUSES = "('creating', 'new', 'processing', 'settled', 'expired', 'invalid')"
EXCEPTIONS = "('paid_partial', 'paid_over', 'paid_late')"


def upgrade() -> None:
    op.execute("CREATE SEQUENCE payment_requests_seq")
    op.create_table(
        "payment_requests",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exception_status", sa.String(16)),
        sa.Column("status_reason", sa.Text),
        sa.Column("amount_sat", sa.BigInteger, nullable=False),
        sa.Column("received_sat", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("required_confirmations", sa.Integer, nullable=False),
        sa.Column("confirmations", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("tolerance_pct", sa.Numeric(5, 2), nullable=False, server_default=sa.text("0")),
        sa.Column("monitoring_s", sa.Integer, nullable=False),
        sa.Column("address", sa.String(100), unique=True),
        sa.Column("address_supplied", sa.Boolean, nullable=False),
        sa.Column("memo", sa.Text),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
        sa.Column("checks", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('payment_requests_seq')")),
        sa.UniqueConstraint("app_id", "idempotency_key", name="payments_app_idempotency_key"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="payments_status_valid"),
        sa.CheckConstraint(
            f"exception_status IS NULL OR exception_status IN {EXCEPTIONS}", name="payments_exception_valid"
        ),
        sa.CheckConstraint("amount_sat > 0 AND received_sat >= 0", name="payments_amounts_valid"),
        sa.CheckConstraint("required_confirmations >= 0 AND monitoring_s >= 0", name="payments_policy_valid"),
        sa.CheckConstraint("tolerance_pct >= 0 AND tolerance_pct < 100", name="payments_tolerance_valid"),
        sa.CheckConstraint("(status = 'creating') = (address IS NULL)", name="payments_address_once_created"),
        sa.CheckConstraint(
            "(status = 'settled') = (settled_at IS NOT NULL) OR status = 'invalid'",
            name="payments_settled_at",
        ),
    )
    op.create_index("payments_app_listing", "payment_requests", ["app_id", "seq"])
    op.create_index(
        "payments_open",
        "payment_requests",
        ["expires_at"],
        postgresql_where=sa.text("status IN ('creating', 'new', 'processing')"),
    )
    op.create_table(
        "payment_txs",
        sa.Column("txid", sa.String(64), primary_key=True),
        sa.Column("vout", sa.Integer, primary_key=True),
        sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payment_requests.id"), nullable=False),
        sa.Column("amount_sat", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("confirmations", sa.Integer, nullable=False),
        sa.Column("block_hash", sa.String(64)),
        sa.Column("block_height", sa.Integer),
        sa.Column("replaceable", sa.Boolean, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_sat > 0", name="payment_txs_amount_positive"),
        sa.CheckConstraint("state IN ('mempool', 'confirmed', 'conflicted', 'removed')", name="payment_txs_state"),
    )
    op.create_index("payment_txs_payment", "payment_txs", ["payment_id"])
    op.create_table(
        "payment_audit",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payment_requests.id"), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("exception_status", sa.String(16)),
        sa.Column("received_sat", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("payment_audit_payment", "payment_audit", ["payment_id", "id"])
    op.create_table(
        "app_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subject_id", UUID(as_uuid=True), nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index("app_events_undelivered", "app_events", ["id"], postgresql_where=sa.text("delivered_at IS NULL"))
    op.create_table(
        "chain_cursors",
        sa.Column("node", sa.String(32), primary_key=True),
        sa.Column("block_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_table(
        "webhook_receipts",
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )


def downgrade() -> None:
    for table in (
        "webhook_receipts",
        "chain_cursors",
        "app_events",
        "payment_audit",
        "payment_txs",
        "payment_requests",
    ):
        op.drop_table(table)
    op.execute("DROP SEQUENCE payment_requests_seq")
