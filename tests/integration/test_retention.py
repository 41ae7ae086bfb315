"""Retention deletes what is older than its age, in bounded batches, and nothing that is still alive."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.types.json
import pytest

from satworks import clock
from satworks.db.outbox import DISPATCH_LOCK
from satworks.jobs.base import JobContext, NoPayload
from satworks.jobs.maintenance import retain
from satworks.settings import Settings
from tests.platform_support import worker_resources
from tests.support import db_dsn

pytestmark = pytest.mark.timeout(120)


def _jobs(conn: psycopg.Connection[Any], app_id: uuid.UUID, tag: str, count: int, status: str, age: str) -> None:
    """``count`` rows created ``age`` ago: succeeded then, or scheduled for tomorrow (still waiting)."""
    finished = "now() - %(age)s::interval" if status == "succeeded" else "NULL"
    scheduled = "now() + interval '1 day'" if status == "scheduled" else "NULL"
    conn.execute(
        "INSERT INTO jobs (id, app_id, type, payload, priority, queue, status, max_retries, request_hash,"
        " created_at, finished_at, scheduled_for, idempotency_key)"
        f" SELECT gen_random_uuid(), %(app)s, 'canary', '{{}}', 'normal', 'unused', %(status)s, 0, 'h',"
        f" now() - %(age)s::interval, {finished}, {scheduled}, %(tag)s || g FROM generate_series(1, %(n)s) g",
        {"app": app_id, "status": status, "age": age, "n": count, "tag": tag},
    )


@contextmanager
def dispatchers_held(settings: Settings) -> Iterator[None]:
    """No outbox dispatcher runs meanwhile (they wait for its lock)."""
    with psycopg.connect(db_dsn(settings), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (DISPATCH_LOCK,))
        yield


def test_retention_deletes_old_finished_rows_in_bounded_batches_and_keeps_the_rest(
    settings: Settings, make_key: Any
) -> None:
    make_key()
    tag = uuid.uuid4().hex[:8]
    # A dispatcher of another test's worker would fan the undispatched event out meanwhile: held off.
    with dispatchers_held(settings):
        with psycopg.connect(db_dsn(settings)) as conn:
            app_id = conn.execute("SELECT id FROM apps ORDER BY created_at DESC LIMIT 1").fetchone()[0]  # type: ignore[index]
            _jobs(conn, app_id, f"{tag}-old-", 25, "succeeded", "40 days")
            _jobs(conn, app_id, f"{tag}-new-", 3, "succeeded", "1 day")
            _jobs(conn, app_id, f"{tag}-waiting-", 2, "queued", "40 days")
            conn.execute(
                "INSERT INTO webhook_receipts (source, event_id, received_at) VALUES"
                " (%s, 'old', now() - interval '8 days'), (%s, 'new', now())",
                (tag, tag),
            )
            old_events = {
                data: conn.execute(
                    "INSERT INTO app_events (app_id, type, subject_id, data, created_at, delivered_at) VALUES"
                    " (%s, 'x', gen_random_uuid(), %s, now() - interval '31 days', %s) RETURNING id",
                    (app_id, psycopg.types.json.Jsonb({"k": data}), None if data == "undispatched" else clock.utcnow()),
                ).fetchone()[0]  # type: ignore[index]
                for data in ("handed-over", "undispatched", "retrying", "delivered")
            }
            conn.execute(
                "INSERT INTO app_events (app_id, type, subject_id, data, delivered_at)"
                " VALUES (%s, 'x', gen_random_uuid(), '{\"k\": \"new\"}', now())",
                (app_id,),
            )
            # An endpoint that still retries one old event (deleted, so no pump of another test picks it up).
            endpoint = conn.execute(
                "INSERT INTO webhook_endpoints (id, app_id, url, events, secret_enc, deleted_at)"
                " VALUES (gen_random_uuid(), %s, 'http://127.0.0.1:9/x', '{x}', 'unused', now()) RETURNING id",
                (app_id,),
            ).fetchone()[0]  # type: ignore[index]
            for data, status in (("retrying", "retrying"), ("delivered", "delivered")):
                conn.execute(
                    "INSERT INTO webhook_deliveries (id, app_id, endpoint_id, event_id, event_type, status)"
                    " VALUES (gen_random_uuid(), %s, %s, %s, 'x', %s)",
                    (app_id, endpoint, old_events[data], status),
                )
        bounded = settings.model_copy(update={"retention_batch_rows": 10, "retention_max_batches": 2})

        with worker_resources(bounded) as res:
            first = retain(JobContext(uuid.uuid4(), 1, bounded, res), NoPayload())
            # The next runs go on where it stopped (the database may also hold other tests' old rows).
            later = [retain(JobContext(uuid.uuid4(), 1, bounded, res), NoPayload()) for _ in range(2)]
            while later[-1]["jobs"] and len(later) < 50:
                later.append(retain(JobContext(uuid.uuid4(), 1, bounded, res), NoPayload()))

        assert first["jobs"] == 20  # two batches of ten, then the run stops: the next one goes on
        assert later[0]["jobs"] >= 5
        assert later[-1]["jobs"] == 0
        with psycopg.connect(db_dsn(settings)) as conn:
            left = dict(
                conn.execute(
                    "SELECT split_part(idempotency_key, '-', 2), count(*) FROM jobs"
                    " WHERE idempotency_key LIKE %s GROUP BY 1",
                    (f"{tag}-%",),
                ).fetchall()
            )
            receipts = [r[0] for r in conn.execute("SELECT event_id FROM webhook_receipts WHERE source = %s", (tag,))]
            events = {r[0] for r in conn.execute("SELECT data->>'k' FROM app_events WHERE app_id = %s", (app_id,))}
    assert left == {"new": 3, "waiting": 2}
    assert receipts == ["new"]
    # Old events go once every delivery is settled; one not fanned out yet, or still retrying, stays.
    assert events == {"new", "undispatched", "retrying"}
