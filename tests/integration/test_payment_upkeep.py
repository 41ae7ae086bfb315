"""``platform.payment_checks``: an open request whose check chain ended gets a check again, throttled.

Runs in the test process with queues of its own (no worker consumes them), so the messages it sends
stay where the test can see them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from satworks.jobs.base import JobContext, NoPayload
from satworks.jobs.payment_upkeep import payment_checks
from satworks.settings import Settings
from tests.platform_support import worker_resources
from tests.support import db_dsn, message_in_broker


@pytest.fixture
def own_queues(settings: Settings) -> Iterator[Settings]:
    mine = settings.model_copy(update={"queue_prefix": f"pu{uuid.uuid4().hex[:8]}_"})
    yield mine
    client = redis.Redis.from_url(mine.effective_broker_url)
    keys = list(client.scan_iter(f"satworks:{mine.queue_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def open_request(settings: Settings, app_id: Any, *, checked_ago: str, expires_in: str) -> str:
    payment_id = str(uuid.uuid4())
    with psycopg.connect(db_dsn(settings)) as conn:
        conn.execute(
            "INSERT INTO payment_requests (id, app_id, method, status, amount_sat, required_confirmations,"
            " monitoring_s, address, address_supplied, metadata, request_hash, created_at, expires_at, checked_at,"
            " checks) VALUES (%s, %s, 'onchain', 'new', 1000, 1, 3600, %s, false, '{}', 'h',"
            " now() - interval '2 hours', now() + %s::interval, now() - %s::interval, 7)",
            (payment_id, app_id, f"bcrt1qupkeep{uuid.uuid4().hex}", expires_in, checked_ago),
        )
    return payment_id


def test_a_request_no_check_evaluated_for_long_gets_one_and_not_again_at_once(
    own_queues: Settings, make_key: Any
) -> None:
    settings = own_queues
    key = make_key()
    with psycopg.connect(db_dsn(settings)) as conn:
        app_id = conn.execute("SELECT id FROM apps WHERE key_id = %s", (key.split("_")[1],)).fetchone()[0]  # type: ignore[index]
    stale = open_request(settings, app_id, checked_ago="1 hour", expires_in="1 day")
    lively = open_request(settings, app_id, checked_ago="10 seconds", expires_in="1 day")
    expired_unseen = open_request(settings, app_id, checked_ago="3 minutes", expires_in="-2 minutes")

    with worker_resources(settings) as res:
        first = payment_checks(JobContext(uuid.uuid4(), 1, settings, res), NoPayload())
        second = payment_checks(JobContext(uuid.uuid4(), 1, settings, res), NoPayload())

    assert first["revived"] >= 2 and second["revived"] == 0
    assert message_in_broker(settings, stale) and message_in_broker(settings, expired_unseen)
    assert not message_in_broker(settings, lively)
    with psycopg.connect(db_dsn(settings)) as conn:
        stamped = dict(
            conn.execute(
                "SELECT id::text, requeued_at IS NOT NULL FROM payment_requests WHERE id = ANY(%s::uuid[])",
                ([stale, lively, expired_unseen],),
            ).fetchall()
        )
    assert stamped == {stale: True, lively: False, expired_unseen: True}
