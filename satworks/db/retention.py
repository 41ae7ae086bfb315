"""Retention: old rows deleted in small batches, each its own short transaction.

Each batch picks at most ``limit`` rows through an index on their age (``jobs_created``,
``payment_audit_created``, ``app_events_created``, ``webhook_receipts_received``, the primary key of
``schedule_runs``), locks them with ``SKIP LOCKED`` (a row someone else holds is left for the next
run: retention never waits for the hot paths) and deletes them. ``lock_timeout`` bounds any other
wait. A job's report (``reports``) goes with the job (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, text

from satworks.jobs.status import FINISHED, sql_list
from satworks.payments.status import CLOSED, PaymentStatus

_FINISHED = sql_list(FINISHED)
_CLOSED = "(" + ", ".join(f"'{PaymentStatus(s).value}'" for s in sorted(CLOSED)) + ")"

JOBS = (
    "DELETE FROM jobs WHERE id IN ("  # noqa: S608 - enum values, no input
    "SELECT id FROM jobs WHERE created_at < :cutoff AND finished_at < :cutoff"
    f" AND status IN {_FINISHED} ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)
"""Finished jobs that finished before the cutoff, found oldest-created first (a job finishes after it is
created, so they are all among those created before it): ``created_at`` never changes, so its index costs
the workers' updates nothing, where one on ``finished_at`` would make every outcome a non-HOT update."""

PAYMENT_AUDIT = (
    "DELETE FROM payment_audit WHERE id IN ("  # noqa: S608 - enum values, no input
    "SELECT a.id FROM payment_audit a JOIN payment_requests r ON r.id = a.payment_id"
    f" WHERE a.created_at < :cutoff AND r.status IN {_CLOSED}"
    " AND r.expires_at + make_interval(secs => r.monitoring_s) < :cutoff"
    " ORDER BY a.created_at LIMIT :limit FOR UPDATE OF a SKIP LOCKED)"
)
"""Audit rows of requests that are closed and past their monitoring window (nothing can change them)."""

APP_EVENTS = (
    "DELETE FROM app_events WHERE id IN ("
    "SELECT e.id FROM app_events e WHERE e.created_at < :cutoff AND e.delivered_at IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'retrying')"
    " ORDER BY e.created_at LIMIT :limit FOR UPDATE OF e SKIP LOCKED)"
)
"""Events fanned out, none of whose deliveries is still to be sent: an old event the dispatcher has not
handed over yet, or whose delivery still retries, is kept (its deliveries would go with it). One
``NOT EXISTS`` per status, so each reads its partial index (``webhook_deliveries_pending``, ``_retrying``):
with ``status IN (...)`` the planner scans every delivery ever made (checked with 200,000 deliveries:
3,449 buffers against 1,217)."""

WEBHOOK_RECEIPTS = (
    "DELETE FROM webhook_receipts WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM webhook_receipts WHERE received_at < :cutoff ORDER BY received_at LIMIT :limit"
    " FOR UPDATE SKIP LOCKED))"
)

SCHEDULE_RUNS = (
    "DELETE FROM schedule_runs WHERE (task, fire_at) IN ("
    "SELECT task, fire_at FROM schedule_runs WHERE task = :task AND fire_at < :cutoff AND status IS NOT NULL"
    " ORDER BY fire_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)

TABLES = {
    "jobs": JOBS,
    "payment_audit": PAYMENT_AUDIT,
    "app_events": APP_EVENTS,
    "webhook_receipts": WEBHOOK_RECEIPTS,
}
"""The statement that deletes one batch of each table (``schedule_runs`` goes task by task)."""


def purge(
    begin: Callable[[], AbstractContextManager[Connection]],
    statement: str,
    params: dict[str, Any],
    *,
    limit: int,
    max_batches: int,
    lock_timeout_ms: int = 2000,
) -> int:
    """Run ``statement`` (one batch of at most ``limit`` rows) in a fresh transaction each time, until
    a batch comes back short or ``max_batches`` ran; returns how many rows went."""
    total = 0
    for _ in range(max_batches):
        with begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
            deleted = conn.execute(text(statement), {**params, "limit": limit}).rowcount
        total += deleted
        if deleted < limit:
            break
    return total


def tasks_with_runs(conn: Connection) -> list[str]:
    return [row[0] for row in conn.execute(text("SELECT task FROM schedules ORDER BY task"))]
