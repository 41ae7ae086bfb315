"""Lightning payment requests: the invoice on payment_requests, lnd's bookkeeping, the listener's cursor.

Revision ID: 0006_lightning
Revises: 0007_notifications
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0006_lightning"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None

INVOICE_STATES = "('OPEN', 'SETTLED', 'CANCELED', 'ACCEPTED')"


def upgrade() -> None:
    op.add_column("payment_requests", sa.Column("payment_request", sa.Text))
    op.add_column("payment_requests", sa.Column("payment_hash", sa.String(64)))
    op.add_column("payment_requests", sa.Column("received_msat", sa.BigInteger))
    op.create_unique_constraint("payment_requests_payment_hash_key", "payment_requests", ["payment_hash"])
    op.create_check_constraint("payments_method_valid", "payment_requests", "method IN ('onchain', 'lightning')")
    op.drop_constraint("payments_address_once_created", "payment_requests", type_="check")
    op.create_check_constraint(
        "payments_address_once_created",
        "payment_requests",
        "method <> 'onchain' OR ((status = 'creating') = (address IS NULL))",
    )
    op.create_check_constraint(
        "payments_invoice_once_created",
        "payment_requests",
        "method <> 'lightning' OR (address IS NULL AND (status = 'creating') = (payment_request IS NULL)"
        " AND (payment_request IS NULL) = (payment_hash IS NULL))",
    )
    # received_sat is the whole satoshis of received_msat, never rounded up (bigint division truncates).
    op.create_check_constraint(
        "payments_received_msat",
        "payment_requests",
        "received_msat IS NULL OR (received_msat >= 0 AND received_sat = received_msat / 1000)",
    )
    op.create_check_constraint(
        "payments_payment_hash_hex", "payment_requests", "payment_hash IS NULL OR payment_hash ~ '^[0-9a-f]{64}$'"
    )
    op.create_table(
        "lightning_invoices",
        sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payment_requests.id"), primary_key=True),
        sa.Column("payment_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("preimage", sa.LargeBinary),
        sa.Column("value_msat", sa.BigInteger, nullable=False),
        sa.Column("add_index", sa.BigInteger),
        sa.Column("settle_index", sa.BigInteger),
        sa.Column("state", sa.String(16)),
        sa.Column("amt_paid_msat", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("node_expires_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("value_msat > 0 AND amt_paid_msat >= 0", name="lightning_invoices_amounts"),
        sa.CheckConstraint("preimage IS NULL OR length(preimage) = 32", name="lightning_invoices_preimage"),
        sa.CheckConstraint(f"state IS NULL OR state IN {INVOICE_STATES}", name="lightning_invoices_state"),
        sa.CheckConstraint("(add_index IS NULL) = (node_expires_at IS NULL)", name="lightning_invoices_created"),
    )
    op.create_table(
        "lightning_cursors",
        sa.Column("node", sa.String(66), primary_key=True),
        sa.Column("add_index", sa.BigInteger, nullable=False),
        sa.Column("settle_index", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("add_index >= 0 AND settle_index >= 0", name="lightning_cursors_indices"),
    )


def downgrade() -> None:
    op.drop_table("lightning_cursors")
    op.drop_table("lightning_invoices")
    lightning = "SELECT id FROM payment_requests WHERE method <> 'onchain'"
    op.execute(f"DELETE FROM payment_audit WHERE payment_id IN ({lightning})")  # noqa: S608 - constant SQL
    op.execute("DELETE FROM payment_requests WHERE method <> 'onchain'")
    for name in ("payments_payment_hash_hex", "payments_received_msat", "payments_invoice_once_created"):
        op.drop_constraint(name, "payment_requests", type_="check")
    op.drop_constraint("payments_address_once_created", "payment_requests", type_="check")
    op.create_check_constraint(
        "payments_address_once_created", "payment_requests", "(status = 'creating') = (address IS NULL)"
    )
    op.drop_constraint("payments_method_valid", "payment_requests", type_="check")
    op.drop_constraint("payment_requests_payment_hash_key", "payment_requests", type_="unique")
    for column in ("received_msat", "payment_hash", "payment_request"):
        op.drop_column("payment_requests", column)
