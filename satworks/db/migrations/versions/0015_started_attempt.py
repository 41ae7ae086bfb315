"""``jobs.started_attempt``: the latest attempt known to have begun running.

A busy worker process claims a job when its message arrives, before a worker thread is free to run
it (``satworks.workers.middleware.tracking``: the claim's commit then overlaps the job ahead of it).
Such a job reads ``running`` while it waits in the process' buffer. If the process dies then, the
job never ran: its next claim must not count a crash, or jobs that merely waited beside a job that
kills its worker would be dead-lettered with it. ``started_attempt`` tells the two apart: a claim
made as the job starts sets it, a claim made ahead leaves it, and the worker thread sets it when
it starts the job (``START_BATCH``); an outcome sets it too. A claim counts a crash only when the
attempt it finds ``running`` had started.

Existing rows keep NULL, read as "started" (what every claim meant until now); new rows start at 0.

Revision ID: 0015_started_attempt
Revises: 0014_jobs_unenqueued
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_started_attempt"
down_revision = "0014_jobs_unenqueued"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("started_attempt", sa.Integer))  # NULL for existing rows: no rewrite
    op.alter_column("jobs", "started_attempt", server_default=sa.text("0"))  # new rows only


def downgrade() -> None:
    op.drop_column("jobs", "started_attempt")
