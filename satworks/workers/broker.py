"""Build the Dramatiq broker from settings. The worker entry sets it as Dramatiq's one global."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers import redis as dramatiq_redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware, default_middleware
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; Dramatiq's encoder does the same work
    orjson = None  # type: ignore[assignment]

from satworks import clock
from satworks.jobs.base import QUEUES
from satworks.settings import Settings

Delayed = tuple[dramatiq.Message[Any], int | None]


class SatworksRedisBroker(RedisBroker):
    """Dramatiq's Redis broker plus batched enqueue and on-demand dead-worker recovery."""

    def enqueue_many(self, items: Sequence[Delayed]) -> None:
        """Enqueue many messages in one round trip: one call of a script that writes every message
        the way Dramatiq's own enqueue does (see ``ENQUEUE_MANY``), atomically."""
        if not items:
            return
        args, sent = self._enqueue_args(items)
        if _LAYOUT_KNOWN:
            self._enqueue_script()(keys=[self.namespace], args=args)
        else:  # a Dramatiq whose enqueue we do not know: its own script, once per message
            dispatch = self.scripts["dispatch"]
            fixed = self._script_args("enqueue", "", maintenance=False)
            pipe = self.client.pipeline(transaction=False)
            for i in range(2, len(args), 3):
                fixed[2] = args[i]
                dispatch(keys=[self.namespace], args=[*fixed, args[i + 1], args[i + 2]], client=pipe)
            pipe.execute()
        self._after_enqueue(sent)

    async def enqueue_many_async(self, items: Sequence[Delayed], client: AsyncRedis) -> None:
        """``enqueue_many`` through an asyncio client of the same Redis server, without a thread."""
        if not items:
            return
        if not _LAYOUT_KNOWN:
            await asyncio.to_thread(self.enqueue_many, items)
            return
        args, sent = self._enqueue_args(items)
        script = self._enqueue_script()
        try:
            await client.evalsha(script.sha, 1, self.namespace, *args)
        except NoScriptError:  # Redis restarted or its scripts were flushed: nothing of the call ran
            await client.script_load(script.script)
            await client.evalsha(script.sha, 1, self.namespace, *args)
        self._after_enqueue(sent)

    def _after_enqueue(self, sent: list[Delayed]) -> None:
        if _hooked(self.middleware, "after_enqueue"):
            for message, delay in sent:
                self.emit_after("enqueue", message, delay)

    def _enqueue_script(self) -> Any:
        script = self.scripts.get("satworks_enqueue_many")
        if script is None:
            script = self.scripts["satworks_enqueue_many"] = self.client.register_script(ENQUEUE_MANY)
        return script

    def _enqueue_args(self, items: Sequence[Delayed]) -> tuple[list[Any], list[Delayed]]:
        """``ENQUEUE_MANY``'s arguments (after each message's ``before_enqueue`` hooks) and the messages."""
        now = _millis()
        encode = _encode if type(dramatiq.get_encoder()) is dramatiq.JSONEncoder else _dramatiq_encode
        args: list[Any] = [now, self.broker_id]
        sent: list[Delayed] = []
        hooked = _hooked(self.middleware, "before_enqueue")
        for original, delay in items:
            message_id = str(uuid.uuid4())
            if delay is None:
                message = original.copy(options={"redis_message_id": message_id})
            else:
                message = original.copy(
                    queue_name=dq_name(original.queue_name),
                    options={"redis_message_id": message_id, "eta": now + delay},
                )
            if hooked:
                self.emit_before("enqueue", message, delay)
            args += (message.queue_name, message_id, encode(message))
            sent.append((message, delay))
        return args, sent

    def _script_args(self, command: str, queue: str, *, maintenance: bool) -> list[Any]:
        """The fixed arguments of Dramatiq's dispatch script, as ``RedisBroker._dispatch`` sends them."""
        unpack_size = self._max_unpack_size()  # type: ignore[no-untyped-call]
        return [
            command,
            _millis(),
            queue,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            int(maintenance),
            unpack_size,
        ]

    def recover_dead_workers(self) -> None:
        """Heartbeat for this process and requeue unacked messages of workers silent past the timeout.

        Dramatiq runs this maintenance on a random 0.1% of calls; under light traffic a killed
        worker's messages could wait for hours. The reaper thread calls it on a fixed interval.
        The carrier command is ``qsize``, which reads and changes nothing else.
        """
        dispatch = self.scripts["dispatch"]
        pipe = self.client.pipeline(transaction=False)
        for queue in sorted(self.queues | self.delay_queues):
            args = self._script_args("qsize", queue, maintenance=True)
            dispatch(keys=[self.namespace], args=args, client=pipe)
        pipe.execute()


# ``dispatch.lua``'s "enqueue" command, for many messages in one call: the worker's heartbeat entry,
# then per message HSET into ``<ns>:<queue>.msgs`` and RPUSH of its id onto ``<ns>:<queue>``.
# ARGV: timestamp, broker id, then (queue name, redis message id, encoded message) per message.
ENQUEUE_MANY = """
local namespace = KEYS[1]
redis.call("zadd", namespace .. ":__heartbeats__", ARGV[1], ARGV[2])
for i = 3, #ARGV, 3 do
    local queue_full_name = namespace .. ":" .. ARGV[i]
    redis.call("hset", queue_full_name .. ".msgs", ARGV[i + 1], ARGV[i + 2])
    redis.call("rpush", queue_full_name, ARGV[i + 1])
end
return (#ARGV - 2) / 3
"""

# The lines of Dramatiq's dispatch script that ``ENQUEUE_MANY`` repeats; with another Dramatiq,
# messages go through that script one by one instead.
_DRAMATIQ_ENQUEUE = (
    'local heartbeats = namespace .. ":__heartbeats__"',
    'redis.call("zadd", heartbeats, timestamp, worker_id)',
    'local queue_full_name = namespace .. ":" .. queue_name',
    'local queue_messages = queue_full_name .. ".msgs"',
    'redis.call("hset", queue_messages, message_id, message_data)',
    'redis.call("rpush", queue_full_name, message_id)',
)
_DISPATCH_LUA = dramatiq_redis._scripts.get("dispatch", b"")
_LAYOUT_KNOWN = all(line.encode() in _DISPATCH_LUA for line in _DRAMATIQ_ENQUEUE)


def _hooked(middleware: Sequence[Middleware], hook: str) -> bool:
    """Whether any middleware does something in ``hook`` (emitting to no-op hooks costs per message)."""
    return any(getattr(type(m), hook) is not getattr(Middleware, hook) for m in middleware)


_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(dramatiq.Message))


def _encode(message: dramatiq.Message[Any]) -> bytes:
    """What Dramatiq's JSON encoder makes of a message (the same JSON document), several times faster."""
    if orjson is not None:
        try:
            return orjson.dumps({name: getattr(message, name) for name in _MESSAGE_FIELDS})
        except TypeError:  # something orjson does not take (e.g. a huge integer): Dramatiq's own encoder
            pass
    return message.encode()


def _dramatiq_encode(message: dramatiq.Message[Any]) -> bytes:
    return message.encode()


def _millis() -> int:
    return clock.unix_ms()


def build_broker(settings: Settings, *, extra_middleware: Sequence[Middleware] = ()) -> dramatiq.Broker:
    """The broker with Dramatiq's default middleware; ``extra_middleware`` goes just before Retries,
    so its ``after_*`` hooks (run in reverse order) see the retry decision already made."""
    middleware = [m() for m in default_middleware]
    retries_at = next(i for i, m in enumerate(middleware) if type(m).__name__ == "Retries")
    middleware[retries_at:retries_at] = list(extra_middleware)
    broker: dramatiq.Broker
    if settings.broker_kind == "rabbitmq":
        broker = RabbitmqBroker(url=settings.effective_broker_url, middleware=middleware)
    else:
        broker = SatworksRedisBroker(  # type: ignore[no-untyped-call]
            url=settings.effective_broker_url,
            namespace="satworks",
            middleware=middleware,
            heartbeat_timeout=settings.heartbeat_timeout_ms,
        )
    for queue in QUEUES:
        broker.declare_queue(settings.queue_prefix + queue)
    return broker


def enqueue_many(broker: dramatiq.Broker, items: Sequence[Delayed]) -> None:
    if isinstance(broker, SatworksRedisBroker):
        broker.enqueue_many(items)
    else:
        for message, delay in items:
            broker.enqueue(message, delay=delay)


def job_message(
    job_id: uuid.UUID, job_type: str, queue: str, max_retries: int, *, delay_ms: int | None = None, max_age_ms: int
) -> dramatiq.Message[Any]:
    """Messages carry the job id only; the worker reads the payload when it claims the job.

    Dramatiq's age limit counts from the message's creation, so a delayed job's limit is extended by
    its delay: the age that matters is the time since the job became due.
    """
    return dramatiq.Message(
        queue_name=queue,
        actor_name=job_type,
        args=(str(job_id),),
        kwargs={},
        options={"max_retries": max_retries, "max_age": max_age_ms + (delay_ms or 0)},
    )
