"""What the broker still holds, as the reconciler asks it: its epoch sentinel, and which jobs have a message.

**Epoch.** The reconciler keeps a counter in Postgres and a copy in the broker, and moves both on
every run. A broker that lost its data (Redis restarted without persistence, ``FLUSHALL``, restored
from an older snapshot; a new or reset RabbitMQ) has no copy or an older one: every message it held
before is gone. Redis: the key ``<namespace>:<prefix>reconciler.epoch``. RabbitMQ: the durable queue
``<prefix>satworks.epoch`` holding one persistent message, the epoch; no worker consumes it.

**Messages of jobs** (Redis only). A job's message lives in ``<ns>:<queue>.msgs`` (ready, or fetched
and not yet acknowledged) or ``<ns>:<queue>.DQ.msgs`` (delayed, retries waiting out their backoff),
under a Redis message id that is not the job id, so finding one means reading the hashes: a script
walks them in chunks (``HSCAN``), server side, and returns only the wanted job ids and the generation
each message carries. Delayed first, then ready: a delayed message that comes due moves from the
first to the second (added before it is removed), so a scan in that order cannot miss it. RabbitMQ
cannot look up a message: ``holding`` answers ``None`` (unknown) there.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any, Protocol

import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name

from satworks.broker.errors import broker_errors
from satworks.broker.redis import SatworksRedisBroker

SCAN_CHUNK = 1000

# KEYS[1]: a messages hash. ARGV[1]: HSCAN cursor, ARGV[2]: chunk size, ARGV[3..]: wanted job ids.
# Returns {next cursor, {job id, generation, job id, generation, ...}} for the wanted ids in this chunk.
_SCAN = """
local wanted = {}
for i = 3, #ARGV do wanted[ARGV[i]] = true end
local page = redis.call("hscan", KEYS[1], ARGV[1], "COUNT", ARGV[2])
local found = {}
local entries = page[2]
for i = 2, #entries, 2 do
    local body = entries[i]
    local job_id = string.match(body, '"args":%["([%x%-]+)"')
    if job_id and wanted[job_id] then
        found[#found + 1] = job_id
        found[#found + 1] = string.match(body, '"satworks_generation":(%d+)') or "0"
    end
end
return {page[1], found}
"""


class Inventory(Protocol):
    def epoch(self) -> int | None:
        """The broker's copy of the epoch; ``None`` when it has none."""
        ...

    def set_epoch(self, epoch: int) -> None: ...

    def holding(self, queue: str, job_ids: Collection[uuid.UUID], *, scan_max: int) -> dict[uuid.UUID, set[int]] | None:
        """For each of ``job_ids`` that has a message in ``queue`` (ready, unacknowledged or delayed),
        the generations of its messages. ``None``: cannot tell (a queue of more than ``scan_max``
        messages, or a broker that cannot look messages up)."""
        ...


def inventory_of(broker: Any, prefix: str) -> Inventory:
    if isinstance(broker, SatworksRedisBroker):
        return RedisInventory(broker, prefix)
    if isinstance(broker, RabbitmqBroker):
        return RabbitInventory(broker, prefix)
    raise TypeError(f"no inventory for {type(broker).__name__}")


class RedisInventory:
    """Raises ``BrokerUnavailable`` when Redis cannot be asked."""

    def __init__(self, broker: SatworksRedisBroker, prefix: str) -> None:
        self._client = broker.client
        self._ns = broker.namespace
        self._key = f"{broker.namespace}:{prefix}reconciler.epoch"
        self._scan = self._client.register_script(_SCAN)

    def epoch(self) -> int | None:
        with broker_errors():
            value = self._client.get(self._key)
        return int(value) if value is not None else None

    def set_epoch(self, epoch: int) -> None:
        with broker_errors():
            self._client.set(self._key, str(epoch))

    def holding(self, queue: str, job_ids: Collection[uuid.UUID], *, scan_max: int) -> dict[uuid.UUID, set[int]] | None:
        if not job_ids:
            return {}
        hashes = [f"{self._ns}:{dq_name(queue)}.msgs", f"{self._ns}:{queue}.msgs"]  # delayed first: see above
        wanted = [str(job_id) for job_id in job_ids]
        found: dict[uuid.UUID, set[int]] = {}
        with broker_errors():
            pipe = self._client.pipeline(transaction=False)
            for key in hashes:
                pipe.hlen(key)
            if sum(pipe.execute()) > scan_max:
                return None
            for key in hashes:
                cursor = "0"
                while True:
                    cursor_raw, pairs = self._scan(keys=[key], args=[cursor, SCAN_CHUNK, *wanted])
                    for i in range(0, len(pairs), 2):
                        found.setdefault(uuid.UUID(pairs[i].decode()), set()).add(int(pairs[i + 1]))
                    cursor = cursor_raw.decode() if isinstance(cursor_raw, bytes) else str(cursor_raw)
                    if cursor == "0":
                        break
        return found


class RabbitInventory:
    """The epoch in a queue of its own, on a connection of its own (opened per call: the reconciler
    asks twice a run). Raises ``BrokerUnavailable`` when RabbitMQ cannot be asked."""

    def __init__(self, broker: RabbitmqBroker, prefix: str) -> None:
        self._parameters = broker.parameters  # one or a list, as BlockingConnection takes them
        self._queue = f"{prefix}satworks.epoch"

    def epoch(self) -> int | None:
        with broker_errors(), _channel(self._parameters) as channel:
            try:
                channel.queue_declare(self._queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:  # no such queue: a new or reset broker
                    return None
                raise
            method, _, body = channel.basic_get(self._queue, auto_ack=False)
            if method is None:
                return None
            channel.basic_nack(method.delivery_tag, requeue=True)
            return int(body)

    def set_epoch(self, epoch: int) -> None:
        with broker_errors(), _channel(self._parameters) as channel:
            channel.queue_declare(self._queue, durable=True)
            channel.queue_purge(self._queue)
            channel.basic_publish(
                "", self._queue, str(epoch).encode(), pika.BasicProperties(delivery_mode=2, content_type="text/plain")
            )

    def holding(self, queue: str, job_ids: Collection[uuid.UUID], *, scan_max: int) -> dict[uuid.UUID, set[int]] | None:
        return None if job_ids else {}


class _channel:
    def __init__(self, parameters: Any) -> None:
        self._parameters = parameters
        self._connection: pika.BlockingConnection | None = None

    def __enter__(self) -> Any:
        self._connection = pika.BlockingConnection(self._parameters)
        return self._connection.channel()

    def __exit__(self, *exc: object) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
