"""Baseline: plain Dramatiq with exact job tracking written the textbook way.

What a team would write first to keep a job table exact on top of Dramatiq: one middleware, one
Postgres connection per worker thread in autocommit, and per message

- before it runs, a claim: ``queued``/``retrying`` -> ``running`` with its attempt counted, committed;
  a job that is not waiting (cancelled, finished, unknown) is skipped;
- after it ran, its outcome: ``running`` -> ``succeeded`` (or ``failed``), committed before
  Dramatiq acknowledges the message.

The actor is a no-op, like bench/raw_dramatiq.py's. The table is ``raw_jobs``, a copy of satworks'
``jobs`` (columns, defaults, checks and indexes, no triggers) filled with the same rows, so the
difference to raw Dramatiq is what exact tracking costs done plainly, and the difference to
``satworks worker`` is what satworks' own design (group commit, claims ahead, deferred acks) buys.

Workers: ``dramatiq bench.raw_tracked --processes 2 --threads 8`` with ``BENCH_RAW_BROKER_URL``,
``BENCH_RAW_QUEUE`` and ``BENCH_TRACKED_DB_URL`` set (bench/e2e.py: ``drain_raw(..., tracked_db=...)``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dramatiq
import psycopg
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage

from bench.raw_dramatiq import QUEUE, REDIS_URL, RawBench

TABLE = "raw_jobs"

CLAIM = (
    f"UPDATE {TABLE} SET status = 'running', attempts = attempts + 1,"
    " started_at = coalesce(started_at, now()), claimed_at = now(), next_retry_at = NULL"
    " WHERE id = %s AND status IN ('queued', 'retrying') RETURNING id"
)
SUCCEED = (
    f"UPDATE {TABLE} SET status = 'succeeded', result = %s::jsonb, finished_at = now()"
    " WHERE id = %s AND status = 'running'"
)
FAIL = (
    f"UPDATE {TABLE} SET status = 'failed', error_type = %s, error_message = %s, finished_at = now()"
    " WHERE id = %s AND status = 'running'"
)


def tracked_noop(job_id: str) -> None:
    """Does nothing; the middleware tracks the job ``job_id``."""


class TextbookTracking(dramatiq.Middleware):
    """The claim before, the outcome after each message, each its own committed statement."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.local = threading.local()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.db_url, autocommit=True)
            self.local.conn = conn
        return conn

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if self._conn().execute(CLAIM, (message.args[0],)).fetchone() is None:
            raise SkipMessage  # not waiting: cancelled, finished or unknown

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        job_id = message.args[0]
        if exception is None:
            self._conn().execute(SUCCEED, ("null", job_id))
        else:
            self._conn().execute(FAIL, (type(exception).__name__, str(exception), job_id))


def prepare(conn: psycopg.Connection[Any]) -> list[str]:
    """(Re)create ``raw_jobs`` as a copy of ``jobs`` and its rows; returns the ids of its waiting jobs."""
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(f"CREATE TABLE {TABLE} (LIKE jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)")
    conn.execute(f"INSERT INTO {TABLE} SELECT * FROM jobs")
    conn.execute(f"ANALYZE {TABLE}")
    rows = conn.execute(f"SELECT id::text FROM {TABLE} WHERE status = 'queued' ORDER BY seq").fetchall()
    return [r[0] for r in rows]


def outcome_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """``raw_jobs`` rows per status, and the most attempts any took."""
    counts = {str(s): int(n) for s, n in conn.execute(f"SELECT status, count(*) FROM {TABLE} GROUP BY 1")}
    row = conn.execute(f"SELECT coalesce(max(attempts), 0) FROM {TABLE}").fetchone()
    counts["max_attempts"] = int(row[0]) if row else 0
    return counts


def tracked_bench(url: str, queue: str, db_url: str) -> RawBench:
    """The broker and tracked no-op actor for ``url``'s ``queue``, tracking jobs in ``db_url``."""
    return RawBench(url, queue, fn=tracked_noop, middleware=[TextbookTracking(db_url)])


if os.environ.get("BENCH_TRACKED_DB_URL"):  # imported by the dramatiq CLI: the broker and actor it runs
    bench = tracked_bench(
        os.environ.get("BENCH_RAW_BROKER_URL", REDIS_URL),
        os.environ.get("BENCH_RAW_QUEUE", QUEUE),
        os.environ["BENCH_TRACKED_DB_URL"],
    )
    dramatiq.set_broker(bench.broker)
