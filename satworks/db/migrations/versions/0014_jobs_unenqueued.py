"""``jobs_unenqueued``: the intake's "not yet in the broker" marker moves out of ``jobs``.

``jobs.enqueued`` was set by an UPDATE of every job just after its message reached the broker. The
column was named by the partial index ``jobs_unenqueued`` (``WHERE enqueued = 0``), so that update
could never be done in place (HOT): each one wrote a new version of the row and an entry into every
index of ``jobs``, and ran the ``job_watch`` trigger. It cost Postgres more than the INSERT itself
(``bench/RESULTS.md``: Postgres and Redis CPU per submission 140 to 237 µs before, 70 to 84 after).

Now the INSERT also writes the job's id into the narrow ``jobs_unenqueued``, and the mark deletes it
there: a job is handed to the broker once its marker is gone. The stranded sweep, the reconciler and a
rolled-back batch read the marker instead of the column. Existing unmarked waiting jobs keep a marker.

Revision ID: 0014_jobs_unenqueued
Revises: 0013_job_watch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0014_jobs_unenqueued"
down_revision = "0013_job_watch"
branch_labels = None
depends_on = None

WAITING = "('queued', 'retrying', 'scheduled')"


def upgrade() -> None:
    op.drop_index("jobs_unenqueued", table_name="jobs")  # the old partial index had the table's name
    op.create_table(
        "jobs_unenqueued",
        # No foreign key: a check per INSERT would cost what this table saves; the sweep drops markers
        # whose job is gone or no longer waiting.
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),  # the job's
    )
    op.execute(
        "INSERT INTO jobs_unenqueued (id, created_at)"  # noqa: S608 - constants of this module, no input
        f" SELECT id, created_at FROM jobs WHERE enqueued = 0 AND status IN {WAITING}"
    )
    # Every job passes through it (a marker inserted, then deleted): vacuumed after 2 % of its rows
    # changed, as job_watch.
    op.execute("ALTER TABLE jobs_unenqueued SET (autovacuum_vacuum_scale_factor = 0.02)")
    op.drop_column("jobs", "enqueued")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("enqueued", sa.Integer, nullable=False, server_default=sa.text("1")))
    op.execute("UPDATE jobs SET enqueued = 0 WHERE id IN (SELECT id FROM jobs_unenqueued)")
    op.alter_column("jobs", "enqueued", server_default=sa.text("0"))
    op.drop_table("jobs_unenqueued")
    op.create_index("jobs_unenqueued", "jobs", ["created_at"], postgresql_where=sa.text("enqueued = 0"))
