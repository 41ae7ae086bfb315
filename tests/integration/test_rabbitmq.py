"""The same job lifecycle on Dramatiq's RabbitMQ broker (skipped when RabbitMQ is not reachable; under
``CI=true`` that fails instead)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest

from satworks.broker.build import build_broker
from satworks.broker.inventory import inventory_of
from satworks.broker.messages import ACK_AFTER
from satworks.broker.rabbitmq import SatworksRabbitmqBroker
from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.jobs_helpers import post_job, wait_for_status
from tests.support import WorkerProcess, free_port, require_service, tcp_check, wait_until

AMQP_URL = os.environ.get("SATWORKS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(scope="module", autouse=True)
def rabbitmq() -> str:
    require_service("RabbitMQ", tcp_check(AMQP_URL, default_port=5672))
    return AMQP_URL


@pytest.fixture(scope="module")
def rabbit_settings(rabbitmq: str, base_settings: Settings) -> Iterator[Settings]:
    # Durable queues under this run's own prefix, deleted again at the end.
    settings = base_settings.model_copy(
        update={
            "broker_url": rabbitmq,
            "queue_prefix": "r" + base_settings.queue_prefix,
            "worker_metrics_port": free_port(),
        }
    )
    broker = build_broker(settings)
    for queue in broker.get_declared_queues():
        broker.declare_queue(queue, ensure=True)
    broker.close()
    yield settings
    broker = build_broker(settings)
    for queue in broker.get_declared_queues():
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
    broker.close()


@pytest.fixture(scope="module")
def rabbit_worker(rabbit_settings: Settings) -> Iterator[WorkerProcess]:
    process = WorkerProcess(rabbit_settings).start()
    yield process
    process.stop()


@pytest.fixture
async def rabbit_client(aiohttp_client: Any, rabbit_settings: Settings, rabbit_worker: WorkerProcess) -> Any:
    return await aiohttp_client(create_app(rabbit_settings))


async def test_job_succeeds_through_rabbitmq(rabbit_client: Any, auth: Any) -> None:
    job = await post_job(rabbit_client, auth, priority="high")
    done = await wait_for_status(rabbit_client, auth, job["id"], "succeeded")
    assert done["queue"] == "critical"
    assert done["attempts"] == 1


async def test_retries_then_dead_letter_through_rabbitmq(rabbit_client: Any, auth: Any) -> None:
    recovering = await post_job(rabbit_client, auth, payload={"fail": "transient", "fail_attempts": 1})
    doomed = await post_job(rabbit_client, auth, payload={"fail": "transient"}, max_retries=1)
    assert (await wait_for_status(rabbit_client, auth, recovering["id"], "succeeded"))["attempts"] == 2
    dead = await wait_for_status(rabbit_client, auth, doomed["id"], "dead")
    assert dead["attempts"] == 2


async def test_delayed_and_cancelled_jobs_through_rabbitmq(rabbit_client: Any, auth: Any, make_key: Any) -> None:
    delayed = await post_job(rabbit_client, auth, delay_seconds=1)
    cancelled = await post_job(rabbit_client, auth, delay_seconds=1)
    assert (await rabbit_client.post(f"/v1/jobs/{cancelled['id']}/cancel", headers=auth)).status == 200
    assert delayed["status"] == "scheduled"
    await wait_for_status(rabbit_client, auth, delayed["id"], "succeeded")
    admin = {"Authorization": f"Bearer {make_key(admin=True)}"}
    stats = await (await rabbit_client.get("/v1/stats", headers=admin)).json()
    assert set(stats["queues"]) == {"critical", "default", "bulk"}
    after = await (await rabbit_client.get(f"/v1/jobs/{cancelled['id']}", headers=auth)).json()
    assert (after["status"], after["attempts"]) == ("cancelled", 0)


def test_the_reconciler_sees_a_rabbitmq_that_lost_its_epoch_as_wiped(rabbit_settings: Settings) -> None:
    """The epoch lives in a durable queue of its own; a deleted queue is what a reset broker looks like."""
    broker = build_broker(rabbit_settings)
    inventory = inventory_of(broker, rabbit_settings.queue_prefix)
    queue = f"{rabbit_settings.queue_prefix}satworks.epoch"
    try:
        assert inventory.epoch() is None
        inventory.set_epoch(41)
        inventory.set_epoch(42)
        assert inventory.epoch() == 42 and inventory.epoch() == 42  # read, not consumed
        assert inventory.holding(queue, [uuid.uuid4()], scan_max=10) is None  # messages cannot be looked up
        broker.channel.queue_delete(queue)
        assert inventory.epoch() is None
    finally:
        broker.channel.queue_delete(queue)
        broker.close()


@pytest.fixture
def scratch_queue(rabbitmq: str) -> Iterator[tuple[SatworksRabbitmqBroker, str]]:
    """A satworks RabbitMQ broker and a queue of this test's own, deleted (with its DQ and XQ) afterwards."""
    broker = SatworksRabbitmqBroker(url=rabbitmq)
    queue = f"scratch_{uuid.uuid4().hex[:10]}"
    broker.declare_queue(queue, ensure=True)
    yield broker, queue
    for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
        broker.channel.queue_delete(name)
    broker.close()


def enqueue_plain(broker: SatworksRabbitmqBroker, queue: str, n: int) -> None:
    for _ in range(n):
        broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={}))


def test_a_deferred_ack_reaches_rabbitmq_only_when_it_runs(
    scratch_queue: tuple[SatworksRabbitmqBroker, str],
) -> None:
    """Unacknowledged at the consumer's close, the message comes back; acknowledged late, it does not."""
    broker, queue = scratch_queue
    enqueue_plain(broker, queue, 2)
    first = broker.consume(queue, prefetch=2, timeout=1_000)
    fetched = [wait_until(lambda: next(first), what="a message fetched") for _ in range(2)]
    held: list[Callable[[], None]] = []
    for message in fetched:
        setattr(message, ACK_AFTER, held.append)
        first.ack(message)
    assert len(held) == 2
    held[0]()  # only the first message's ack runs
    first.close()

    second = broker.consume(queue, prefetch=2, timeout=200)
    back = wait_until(lambda: next(second), what="the message whose ack never ran, redelivered")
    assert back.message_id == fetched[1].message_id
    assert next(second) is None  # and nothing else: the first one was acknowledged
    second.ack(back)
    second.close()


def test_messages_whose_ack_waits_leave_room_for_as_many_to_run(
    scratch_queue: tuple[SatworksRabbitmqBroker, str],
) -> None:
    """Dramatiq's window (``prefetch``) for messages to run, and as many again for those that ran and whose
    ack waits for their outcome's commit; beyond that RabbitMQ delivers nothing until an ack."""
    broker, queue = scratch_queue
    enqueue_plain(broker, queue, 5)
    consumer = broker.consume(queue, prefetch=2, timeout=200)
    held = [wait_until(lambda: next(consumer), what=f"message {n + 1} of the window") for n in range(4)]
    assert next(consumer) is None and next(consumer) is None  # the fifth waits for room
    waiting: list[Callable[[], None]] = []
    setattr(held[0], ACK_AFTER, waiting.append)
    consumer.ack(held[0])
    assert next(consumer) is None  # deferred: its place is still taken
    waiting[0]()
    fifth = wait_until(lambda: next(consumer), what="the fifth message, once an ack reached RabbitMQ")
    assert fifth.message_id not in {m.message_id for m in held}
    for message in (*held[1:], fifth):
        consumer.ack(message)
    consumer.close()
