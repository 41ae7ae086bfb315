"""The batched enqueue stores each message byte for byte as Dramatiq's own enqueue would, with or
without middleware hooks to hand the sent copies to."""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

import dramatiq
import pytest
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware

from satworks import clock, ids
from satworks.broker.messages import job_message
from satworks.broker.redis import SatworksRedisBroker

REDIS_URL = os.environ.get("SATWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
NOW_MS = 1_800_000_000_000


class SeesEnqueues(Middleware):
    """A middleware with enqueue hooks: the broker then builds each copy to hand it over."""

    def __init__(self) -> None:
        self.before: list[dramatiq.Message[Any]] = []
        self.after: list[dramatiq.Message[Any]] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        self.before.append(message)

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        self.after.append(message)


def stored(broker: SatworksRedisBroker, queue: str, message_id: str) -> bytes:
    data = broker.client.hget(f"{broker.namespace}:{queue}.msgs", message_id)
    assert isinstance(data, bytes)
    return data


@pytest.mark.parametrize("hooked", [False, True], ids=["no hooks", "enqueue hooks"])
def test_a_batch_is_stored_as_dramatiq_encodes_each_sent_copy(
    redis_namespace: str, monkeypatch: pytest.MonkeyPatch, hooked: bool
) -> None:
    counter = itertools.count()
    monkeypatch.setattr(ids, "uuid4_str", lambda: f"00000000-0000-4000-8000-{next(counter):012d}")
    monkeypatch.setattr(clock, "unix_ms", lambda: NOW_MS)
    broker = SatworksRedisBroker(url=REDIS_URL, namespace=redis_namespace)
    seen = SeesEnqueues()
    if hooked:
        broker.add_middleware(seen)
    now_due = job_message(uuid.uuid4(), "canary", "default", 3, max_age_ms=60_000)
    later = job_message(uuid.uuid4(), "canary", "default", 3, delay_ms=5_000, max_age_ms=60_000)
    try:
        broker.enqueue_many([(now_due, None), (later, 5_000)])

        # The ids the broker drew: the two message ids above, then one Redis id per message.
        first_id, second_id = "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"
        expected_first = now_due.copy(options={"redis_message_id": first_id})
        expected_second = later.copy(
            queue_name=dq_name("default"), options={"redis_message_id": second_id, "eta": NOW_MS + 5_000}
        )
        assert stored(broker, "default", first_id) == expected_first.encode()
        assert stored(broker, dq_name("default"), second_id) == expected_second.encode()
        assert dramatiq.Message.decode(stored(broker, "default", first_id)) == expected_first
        if hooked:
            assert seen.before == seen.after == [expected_first, expected_second]
        else:
            assert seen.before == seen.after == []
    finally:
        broker.close()
