"""A revoked app's name may be given to a new app: names are unique among active apps only.

Revision ID: 0008_hardening
Revises: 0005_draws
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_hardening"
down_revision = "0005_draws"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("apps_name_key", "apps", type_="unique")
    op.create_index("apps_active_name", "apps", ["name"], unique=True, postgresql_where=sa.text("revoked_at IS NULL"))


def downgrade() -> None:
    op.drop_index("apps_active_name", table_name="apps")
    op.create_unique_constraint("apps_name_key", "apps", ["name"])
