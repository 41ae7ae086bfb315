"""Dramatiq's Redis broker plus batched enqueue, idle wake-up and on-demand dead-worker recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakSet

import dramatiq
import orjson
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import dq_name
from dramatiq.errors import ConnectionClosed
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from satworks import clock, ids
from satworks.broker.compat import ACK_KNOWN, DISPATCH_KNOWN, ENQUEUE_KNOWN, WAKEUP_KNOWN
from satworks.broker.hooks import HookedOnly, hooked
from satworks.broker.messages import Delayed
from satworks.broker.wakeup import TRIM, WAKE, WAKE_SENT, Settle, WakeupConsumer, WakeupOnShutdown, wake_key

log = logging.getLogger(__name__)


class SatworksRedisBroker(HookedOnly, RedisBroker):
    """Dramatiq's Redis broker plus batched enqueue, idle wake-up and on-demand dead-worker recovery.

    All use Dramatiq internals, guarded by ``satworks.broker.compat``. Every enqueue (batched or
    Dramatiq's own, hence retries and delayed messages coming due too) pushes wake-up tokens that idle
    consumers wait on (``satworks.broker.wakeup``). Errors are redis-py's: callers wrap calls in
    ``broker_errors()``.
    """

    #: Whether ``recover_dead_workers`` can run with the installed Dramatiq.
    can_recover = DISPATCH_KNOWN

    #: Whether its consumers honour a message's ``ACK_AFTER`` (``satworks.broker.messages``).
    defers_acks = WAKEUP_KNOWN

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._wakeup_consumers: WeakSet[WakeupConsumer] = WeakSet()
        if WAKEUP_KNOWN:
            self.add_middleware(WakeupOnShutdown())

    @property
    def consumer_class(self) -> type[Any]:
        return WakeupConsumer if WAKEUP_KNOWN else _RedisConsumer

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        consumer = super().consume(queue_name, prefetch, timeout)
        if isinstance(consumer, WakeupConsumer):
            self._wakeup_consumers.add(consumer)
        return consumer

    def do_enqueue(self, queue_name: str, message_id: str, data: bytes) -> None:
        """Dramatiq's ``enqueue`` writes through here: ``ENQUEUE_MANY`` for one message, so a token too."""
        if not ENQUEUE_KNOWN:
            self._dispatch("enqueue")(queue_name, message_id, data)  # type: ignore[no-untyped-call]
            return
        self._enqueue_script()(
            keys=[self.namespace], args=[clock.unix_ms(), self.broker_id, queue_name, message_id, data]
        )

    def wake(self, queue_name: str, tokens: int) -> None:
        """Push up to ``tokens`` wake-up tokens for ``queue_name`` (messages that came back to it)."""
        self._script("satworks_wake", WAKE)(keys=[wake_key(self.namespace, queue_name)], args=[tokens])

    def trim_wake_tokens(self, queue_name: str) -> None:
        """Drop the tokens of ``queue_name`` that no waiting message needs (see ``wakeup.TRIM``)."""
        keys = [f"{self.namespace}:{queue_name}", wake_key(self.namespace, queue_name)]
        self._script("satworks_trim_wake", TRIM)(keys=keys)

    def interrupt_consumers(self) -> None:
        """End the idle waits of this process's consumers (the worker is shutting down)."""
        consumers = list(self._wakeup_consumers)
        if not consumers:
            return
        pipe = self.client.pipeline(transaction=False)
        for consumer in consumers:
            consumer.interrupt(pipe)
        try:
            pipe.execute()
        except redis.RedisError:  # the consumers then stop at their next periodic wake-up instead
            log.warning(
                "could not interrupt idle consumers", extra={"action": "wakeup_interrupt_failed"}, exc_info=True
            )

    def enqueue_many(self, items: Sequence[Delayed]) -> None:
        """Enqueue many messages in one round trip: one call of a script that writes every message
        the way Dramatiq's own enqueue does (see ``ENQUEUE_MANY``), atomically."""
        if not ENQUEUE_KNOWN:  # a Dramatiq whose enqueue we do not know: its own, once per message
            for message, delay in items:
                self.enqueue(message, delay=delay)
            return
        if not items:
            return
        args, sent = self._enqueue_args(items)
        self._enqueue_script()(keys=[self.namespace], args=args)
        self._after_enqueue(sent)

    async def enqueue_many_async(self, items: Sequence[Delayed], client: AsyncRedis) -> None:
        """``enqueue_many`` through an asyncio client of the same Redis server, without a thread."""
        if not items:
            return
        if not ENQUEUE_KNOWN:
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
        if hooked(self.middleware, "after_enqueue"):
            for message, delay in sent:
                self.emit_after("enqueue", message, delay)

    def _enqueue_script(self) -> Any:
        return self._script("satworks_enqueue_many", ENQUEUE_MANY)

    def _script(self, name: str, text: str) -> Any:
        script = self.scripts.get(name)
        if script is None:
            script = self.scripts[name] = self.client.register_script(text)
        return script

    def _enqueue_args(self, items: Sequence[Delayed]) -> tuple[list[Any], list[Delayed]]:
        """``ENQUEUE_MANY``'s arguments (after each message's ``before_enqueue`` hooks) and the messages.

        Each message is sent as Dramatiq sends it: a copy with its Redis id (and, delayed, its delay
        queue and ``eta``). Without middleware hooks to hand the copies to, the copy is encoded without
        being built (``_encode``): the same bytes, a third of the cost."""
        now = clock.unix_ms()
        fast = type(dramatiq.get_encoder()) is dramatiq.JSONEncoder
        args: list[Any] = [now, self.broker_id]
        sent: list[Delayed] = []
        before = hooked(self.middleware, "before_enqueue")
        copies = before or not fast or hooked(self.middleware, "after_enqueue")
        for original, delay in items:
            message_id = ids.uuid4_str()
            options: dict[str, Any]
            if delay is None:
                queue, options = original.queue_name, {"redis_message_id": message_id}
            else:
                queue, options = dq_name(original.queue_name), {"redis_message_id": message_id, "eta": now + delay}
            if not copies:
                args += (queue, message_id, _encode(original, queue, options))
                continue
            message = original.copy(queue_name=queue, options=options)
            if before:
                self.emit_before("enqueue", message, delay)
            args += (message.queue_name, message_id, _encode(message) if fast else message.encode())
            sent.append((message, delay))
        return args, sent

    def recover_dead_workers(self) -> None:
        """Heartbeat for this process and requeue unacked messages of workers silent past the timeout.

        Dramatiq runs this maintenance on a random 0.1% of calls; under light traffic a killed
        worker's messages could wait for hours. The reaper thread calls it on a fixed interval.
        The carrier command is ``qsize``, which reads and changes nothing else. Only with a known
        dispatch script (``can_recover``).
        """
        dispatch = self.scripts["dispatch"]
        pipe = self.client.pipeline(transaction=False)
        for queue in sorted(self.queues | self.delay_queues):
            dispatch(keys=[self.namespace], args=self._dispatch_argv("qsize", queue, maintenance=True), client=pipe)
        pipe.execute()

    def ack_all(self, acks: Sequence[Callable[[], None]]) -> None:
        """Deferred acks and nacks (``wakeup.Settle``) in one round trip: the acks in one ``ACK_MANY``
        call, the nacks (rare) as Dramatiq's dispatch script takes them, one by one in the same
        pipeline. Without a known script, each alone, like anything else handed here."""
        if not DISPATCH_KNOWN:
            for ack in acks:
                ack()
            return
        acked: list[Any] = []
        nacked: list[Settle] = []
        for ack in acks:
            if not isinstance(ack, Settle):
                ack()
            elif ack.command == "ack" and ACK_KNOWN:
                acked += (ack.consumer.queue_name, ack.message.options["redis_message_id"])
            else:
                nacked.append(ack)
        ack_many = self._script("satworks_ack_many", ACK_MANY)
        ack_args = [clock.unix_ms(), self.broker_id, *acked]
        try:
            if not nacked:  # the usual case: one script call, no pipeline (which checks its scripts first)
                if acked:
                    ack_many(keys=[self.namespace], args=ack_args)
                return
            pipe = self.client.pipeline(transaction=False)
            if acked:
                ack_many(keys=[self.namespace], args=ack_args, client=pipe)
            dispatch = self.scripts["dispatch"]
            for settle in nacked:
                argv = self._dispatch_argv(settle.command, settle.consumer.queue_name, maintenance=False)
                dispatch(keys=[self.namespace], args=[*argv, settle.message.options["redis_message_id"]], client=pipe)
            pipe.execute()
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def _dispatch_argv(self, command: str, queue: str, *, maintenance: bool) -> list[Any]:
        """The dispatch script's fixed arguments (``compat.DISPATCH_ARGV``)."""
        return [
            command,
            clock.unix_ms(),
            queue,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            int(maintenance),
            self._max_unpack_size(),  # type: ignore[no-untyped-call]
        ]


# ``dispatch.lua``'s "enqueue" command, for many messages in one call: the worker's heartbeat entry,
# then per message HSET into ``<ns>:<queue>.msgs`` and RPUSH of its id onto ``<ns>:<queue>``; then
# per queue one wake-up token per message (``wakeup.WAKE_SENT``).
# ARGV: timestamp, broker id, then (queue name, redis message id, encoded message) per message.
ENQUEUE_MANY = (
    """
local namespace = KEYS[1]
redis.call("zadd", namespace .. ":__heartbeats__", ARGV[1], ARGV[2])
local sent = {}
for i = 3, #ARGV, 3 do
    local queue_full_name = namespace .. ":" .. ARGV[i]
    redis.call("hset", queue_full_name .. ".msgs", ARGV[i + 1], ARGV[i + 2])
    redis.call("rpush", queue_full_name, ARGV[i + 1])
    sent[queue_full_name] = (sent[queue_full_name] or 0) + 1
end
"""
    + WAKE_SENT
    + """
return (#ARGV - 2) / 3
"""
)


# ``dispatch.lua``'s "ack" command, for many messages in one call: the worker's heartbeat entry, then
# per message SREM of its id from the worker's ack set of the queue it was fetched from and, if it was
# there, HDEL from ``<ns>:<queue>.msgs``.
# ARGV: timestamp, broker id, then (queue name, redis message id) per message.
ACK_MANY = """
local namespace = KEYS[1]
redis.call("zadd", namespace .. ":__heartbeats__", ARGV[1], ARGV[2])
local acks = namespace .. ":__acks__." .. ARGV[2]
for i = 3, #ARGV, 2 do
    if redis.call("srem", acks .. "." .. ARGV[i], ARGV[i + 1]) > 0 then
        redis.call("hdel", namespace .. ":" .. ARGV[i] .. ".msgs", ARGV[i + 1])
    end
end
return (#ARGV - 2) / 2
"""


_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(dramatiq.Message))


def _encode(
    message: dramatiq.Message[Any], queue_name: str | None = None, options: dict[str, Any] | None = None
) -> bytes:
    """What Dramatiq's JSON encoder makes of ``message`` (the same JSON document), several times faster;
    given ``queue_name`` and ``options``, of ``message.copy(queue_name=..., options=...)``."""
    fields = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
    if queue_name is not None:
        fields["queue_name"] = queue_name
    if options is not None:
        fields["options"] = {**message.options, **options}
    try:
        return orjson.dumps(fields)
    except TypeError:  # something orjson does not take (e.g. a huge integer): Dramatiq's own encoder
        return dramatiq.get_encoder().encode(fields)
