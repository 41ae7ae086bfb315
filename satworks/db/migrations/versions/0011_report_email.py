"""Where an app's daily report is emailed: ``apps.report_email`` (none: the ``report.ready`` event only).

Revision ID: 0011_report_email
Revises: 0008_hardening
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_report_email"
down_revision = "0008_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("apps", sa.Column("report_email", sa.Text))


def downgrade() -> None:
    op.drop_column("apps", "report_email")
