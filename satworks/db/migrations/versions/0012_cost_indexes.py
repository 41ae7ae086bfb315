"""Indexes the cost curves showed were missing (bench/cost_curves.py, issue 14).

- ``payment_requests_app_status_listing``: a payments listing filtered on a status walks only that
  status's rows, newest first (on ``(app_id, seq)`` alone a rare status read every row of the app).
  Jobs need none: their waiting and running statuses have partial indexes already (0004), and the
  finished ones are common enough that a page reads a bounded number of rows.
- ``payment_requests_app_listing``: ``GET /v1/payments`` had no index on ``(app_id, seq)`` at all (a
  sort of every row of the app per page).
- ``payment_txs_payment``, ``payment_txs_open``, ``payment_txs_height``: a request's receipts, the
  unconfirmed ones, and the ones above a height, so that a sweep reads what a block range touched
  instead of every open request.
- ``payment_requests_sweep``: requests in ``processing``, and ``new`` ones whose expiry is due.

All are built ``CONCURRENTLY`` (outside the migration's transaction): large tables keep taking writes.

Revision ID: 0012_cost_indexes
Revises: 0011_report_email
"""

from __future__ import annotations

from alembic import op

revision = "0012_cost_indexes"
down_revision = "0011_report_email"
branch_labels = None
depends_on = None

INDEXES = {
    "payment_requests_app_listing": "payment_requests (app_id, seq)",
    "payment_requests_app_status_listing": "payment_requests (app_id, status, seq)",
    "payment_requests_sweep": "payment_requests (status, expires_at) WHERE status IN ('new', 'processing')",
    "payment_txs_payment": "payment_txs (payment_id)",
    "payment_txs_open": "payment_txs (payment_id) WHERE state <> 'confirmed'",
    "payment_txs_height": "payment_txs (block_height)",
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, definition in INDEXES.items():
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in reversed(INDEXES):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
