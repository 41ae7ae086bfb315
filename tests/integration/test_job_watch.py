"""``job_watch`` follows every job through every writer, and claims and outcomes stay HOT updates of ``jobs``.

The table is kept by triggers on ``jobs``; these tests drive the real statements (intake insert, claim,
outcome, kill, the reconciler's requeue, a dead-letter style reset, deletion) and compare it with what
the jobs rows call for, then check in a database of its own that Postgres updated the jobs in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from satworks.db import jobs as q
from satworks.db import reconcile
from satworks.db.migrate import upgrade
from satworks.jobs.status import JobStatus
from satworks.settings import Settings
from satworks.workers.status import Outcome, outcomes_json
from tests.support import db_dsn
from tests.unit.job_rows import new_row

pytestmark = pytest.mark.timeout(120)

EXPECTED = """
SELECT id, app_id, CASE WHEN status IN ('queued', 'retrying', 'scheduled') THEN 'waiting'
                WHEN status = 'running' THEN 'running' ELSE status END,
       CASE WHEN status IN ('queued', 'retrying', 'scheduled') THEN coalesce(next_retry_at, scheduled_for, created_at)
            WHEN status = 'running' THEN claimed_at ELSE finished_at END, seq
FROM jobs WHERE id = ANY(%(ids)s) AND status IN ('queued', 'retrying', 'scheduled', 'running', 'dead', 'failed')
"""
FINISHED = datetime(2026, 12, 6, tzinfo=UTC)
WATCHED = "SELECT id, app_id, state, at, seq FROM job_watch WHERE id = ANY(%(ids)s)"


def _app(conn: psycopg.Connection[Any]) -> uuid.UUID:
    app_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO apps (id, name, key_id, key_hash, scopes) VALUES (%s, %s, %s, %s, '{jobs}')",
        (app_id, f"watch-{app_id.hex[:10]}", app_id.hex[:32], app_id.hex),
    )
    return app_id


def _insert(conn: psycopg.Connection[Any], app_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    rows = [new_row(app_id, "t_") for _ in range(count)]
    conn.execute(q.INSERT_BATCH, (q.rows_json(rows),))
    return [row.id for row in rows]


def _outcomes(*outcomes: Outcome) -> str:
    return outcomes_json({o.job_id: o for o in outcomes})


def _matches(conn: psycopg.Connection[Any], ids: list[uuid.UUID]) -> tuple[set[Any], set[Any]]:
    expected = set(conn.execute(EXPECTED, {"ids": ids}).fetchall())
    watched = set(conn.execute(WATCHED, {"ids": ids}).fetchall())
    return expected, watched


def test_job_watch_follows_each_job_through_every_writer(settings: Settings) -> None:
    with psycopg.connect(db_dsn(settings), autocommit=True) as conn:
        app_id = _app(conn)
        ids = _insert(conn, app_id, 6)
        assert {row[2] for row in conn.execute(WATCHED, {"ids": ids})} == {"waiting"}

        claimed = conn.execute(
            q.CLAIM_BATCH, (q.uuid_array(ids[:5]), q.int_array([0] * 5), q.bool_array([True] * 5))
        ).fetchall()
        assert len(claimed) == 5
        conn.execute(
            q.FINISH_BATCH,
            (
                _outcomes(
                    Outcome(ids[0], JobStatus.SUCCEEDED, result={}, finished_at=FINISHED),
                    Outcome(ids[1], JobStatus.RETRYING, next_retry_at=datetime(2030, 1, 1, tzinfo=UTC)),
                    Outcome(ids[2], JobStatus.FAILED, error_type="X", finished_at=FINISHED + timedelta(seconds=1)),
                ),
            ),
        )
        conn.execute(q.KILL, ("Dead", "age limit", ids[5]))
        expected, watched = _matches(conn, ids)
        assert watched == expected
        assert {row[0]: row[2] for row in watched} == {
            ids[1]: "waiting",
            ids[2]: "failed",
            ids[3]: "running",
            ids[4]: "running",
            ids[5]: "dead",
        }

        conn.execute(
            q.CLAIM_BATCH, (q.uuid_array([ids[3]]), q.int_array([0]), q.bool_array([True]))
        )  # a crashed run claimed again
        seen = reconcile.Candidate(ids[1], "canary", "t_default", JobStatus.RETRYING, 0, 1, 0, 0, datetime.now(UTC))
        with psycopg.connect(db_dsn(settings), autocommit=True) as other:
            other.execute(reconcile.REQUEUE, (reconcile._seen_json([seen]),))
        conn.execute("UPDATE jobs SET status = 'queued', finished_at = NULL WHERE id = %s", (ids[2],))  # requeued
        conn.execute("UPDATE jobs SET max_retries = 7 WHERE id = ANY(%s)", (ids,))  # touches no watched column
        conn.execute("DELETE FROM jobs WHERE id = %s", (ids[5],))
        expected, watched = _matches(conn, ids)
        assert watched == expected
        assert ids[5] not in {row[0] for row in watched}
        assert {row[0]: row[2] for row in watched}[ids[2]] == "waiting"
        assert ids[0] not in {row[0] for row in watched}  # succeeded: nothing to watch


@pytest.fixture
def own_database(settings: Settings) -> Iterator[str]:
    """A fresh database, so no other test's rows share the pages whose updates are counted."""
    name = f"{settings.database_url.rsplit('/', 1)[1]}_hot"
    admin = db_dsn(settings).rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    upgrade(settings.database_url.rsplit("/", 1)[0] + "/" + name)
    yield db_dsn(settings).rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _updates_in_this_transaction(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'jobs'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_claims_and_outcomes_update_jobs_in_place(own_database: str) -> None:
    with psycopg.connect(own_database, autocommit=True) as conn:
        ids = _insert(conn, _app(conn), 5)
    with psycopg.connect(own_database) as conn:
        conn.execute(q.CLAIM_BATCH, (q.uuid_array(ids), q.int_array([0] * 5), q.bool_array([True] * 5)))
        assert _updates_in_this_transaction(conn) == (5, 5)
    done = [Outcome(i, JobStatus.SUCCEEDED, result={"n": 1}, finished_at=FINISHED) for i in ids]
    with psycopg.connect(own_database) as conn:
        conn.execute(q.FINISH_BATCH, (_outcomes(*done),))
        assert _updates_in_this_transaction(conn) == (5, 5)
