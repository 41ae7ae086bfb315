"""``job_watch``: the maintenance bookkeeping moves out of ``jobs`` so claims and outcomes are HOT updates.

The reconciler's, retention's and the dead-letter listing's partial indexes (``jobs_waiting``,
``jobs_running``, ``jobs_finished``, ``jobs_dead_letters``) named ``status``, ``claimed_at`` and
``finished_at``, which every claim and every outcome changes: Postgres could then never update a job
in place (HOT), and each claim and outcome wrote an entry into every index of ``jobs``. Now:

- ``job_watch`` holds one narrow row per job the maintenance tasks look at: waiting (``at`` = when it
  is due), running (``at`` = its latest claim), ``dead`` or ``failed`` (``at`` = when it finished;
  ``seq`` orders the dead-letter listing). Succeeded and cancelled jobs have none.
- Statement-level triggers on ``jobs`` keep it exact for every writer (intake, workers, reconciler,
  requeues, cancels, retention), one set-based statement per batch, in the writer's transaction.
- ``jobs`` keeps only indexes on columns its hot paths never change, plus ``jobs_created`` (immutable)
  for retention, and a ``fillfactor`` leaving room on each page for a row's next versions.

Revision ID: 0013_job_watch
Revises: 0012_cost_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013_job_watch"
down_revision = "0012_cost_indexes"
branch_labels = None
depends_on = None

WAITING = "('queued', 'retrying', 'scheduled')"

# The watch row a job version calls for: (state, at), or state NULL for none.
STATE = (
    f"CASE WHEN j.status IN {WAITING} THEN 'waiting' WHEN j.status = 'running' THEN 'running'"
    " WHEN j.status IN ('dead', 'failed') THEN j.status END"
)
AT = (
    f"CASE WHEN j.status IN {WAITING} THEN coalesce(j.next_retry_at, j.scheduled_for, j.created_at)"
    " WHEN j.status = 'running' THEN j.claimed_at ELSE j.finished_at END"
)

FUNCTIONS = f"""
CREATE FUNCTION job_watch_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_watch (id, app_id, state, at, seq)
    SELECT j.id, j.app_id, {STATE}, {AT}, j.seq FROM new_jobs j WHERE {STATE} IS NOT NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION job_watch_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only jobs whose watch row changes: an update of other columns costs one join of the batch.
    DELETE FROM job_watch w USING new_jobs j
    WHERE w.id = j.id AND {STATE} IS NULL;
    INSERT INTO job_watch (id, app_id, state, at, seq)
    SELECT j.id, j.app_id, {STATE}, {AT}, j.seq
    FROM new_jobs j JOIN old_jobs o ON o.id = j.id
    WHERE {STATE} IS NOT NULL
      AND (o.status, coalesce(o.next_retry_at, o.scheduled_for, o.created_at), o.claimed_at, o.finished_at)
          IS DISTINCT FROM
          (j.status, coalesce(j.next_retry_at, j.scheduled_for, j.created_at), j.claimed_at, j.finished_at)
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, at = excluded.at;
    RETURN NULL;
END $$;

CREATE FUNCTION job_watch_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only jobs that can have a row: retention deletes finished jobs, nearly all succeeded.
    DELETE FROM job_watch w USING old_jobs j WHERE w.id = j.id AND {STATE} IS NOT NULL;
    RETURN NULL;
END $$;
"""  # noqa: S608 - SQL fragments of this module, no input

TRIGGERS = """
CREATE TRIGGER job_watch_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION job_watch_inserted();
CREATE TRIGGER job_watch_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION job_watch_updated();
CREATE TRIGGER job_watch_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION job_watch_deleted();
"""


def upgrade() -> None:
    op.create_table(
        "job_watch",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),  # a job's id (kept by triggers, no FK check)
        sa.Column("app_id", UUID(as_uuid=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True)),  # NULL as in jobs (e.g. a running row never claimed)
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.CheckConstraint("state IN ('waiting', 'running', 'dead', 'failed')", name="job_watch_state_valid"),
    )
    op.create_index("job_watch_waiting", "job_watch", ["at", "id"], postgresql_where=sa.text("state = 'waiting'"))
    op.create_index("job_watch_running", "job_watch", ["at"], postgresql_where=sa.text("state = 'running'"))
    op.create_index(
        "job_watch_dead_letters", "job_watch", ["seq"], postgresql_where=sa.text("state IN ('dead', 'failed')")
    )
    # GET /v1/jobs?status=<a watched one>: the app's jobs in that state, newest first, O(limit).
    op.create_index("job_watch_listing", "job_watch", ["app_id", "state", "seq"])
    op.execute(FUNCTIONS)
    op.execute(
        f"INSERT INTO job_watch (id, app_id, state, at, seq) SELECT j.id, j.app_id, {STATE}, {AT}, j.seq FROM jobs j"  # noqa: S608
        f" WHERE {STATE} IS NOT NULL"
    )
    op.execute(TRIGGERS)
    # Every job passes through it (a row inserted, updated, mostly deleted): vacuumed and analysed after
    # 2 % of its rows changed, not the default 20 %, so dead index entries and stale statistics stay small.
    op.execute(
        "ALTER TABLE job_watch SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)"
    )
    op.execute("ANALYZE job_watch")
    op.execute("ALTER TABLE jobs SET (fillfactor = 70)")  # new pages only; old ones keep their layout
    op.create_index("jobs_created", "jobs", ["created_at"])
    for index in ("jobs_waiting", "jobs_running", "jobs_finished", "jobs_dead_letters"):
        op.execute(f"DROP INDEX IF EXISTS {index}")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs ((coalesce(next_retry_at, scheduled_for, created_at)), id)"
        f" WHERE status IN {WAITING}"
    )
    op.execute("CREATE INDEX IF NOT EXISTS jobs_running ON jobs (claimed_at) WHERE status = 'running'")
    op.execute("CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL")
    op.execute("CREATE INDEX IF NOT EXISTS jobs_dead_letters ON jobs (seq) WHERE status IN ('dead', 'failed')")
    op.drop_index("jobs_created", table_name="jobs")
    op.execute("ALTER TABLE jobs RESET (fillfactor)")
    for trigger in ("job_watch_inserted", "job_watch_updated", "job_watch_deleted"):
        op.execute(f"DROP TRIGGER {trigger} ON jobs")
        op.execute(f"DROP FUNCTION {trigger}()")
    op.drop_table("job_watch")
