"""Idle wake-up for the Redis broker: an idle consumer waits for a token from the enqueue, not a timer.

Dramatiq's Redis consumer polls: a fetch that finds nothing sleeps, backing off up to
``worker_timeout`` (1 s), so a job sent to an idle platform waits up to that long. Here every
enqueue also pushes tokens onto the queue's wake list ``<namespace>:<queue>.wake`` (one per
message, at most ``WAKE_TOKENS_MAX`` waiting, in the same script call), and an idle consumer waits
in ``BLPOP`` on that list, on a connection of its own:

- one token wakes one consumer (Redis serves blocked clients in turn): no thundering herd;
- a token pushed between an empty fetch and the wait stays in the list: no lost wake-up;
- an idle consumer still fetches every ``worker_timeout`` (its heartbeat; and messages pushed
  without a token, by plain Dramatiq or dead-worker recovery, are found at the old speed);
- a consumer holding delayed messages (``.DQ``) wakes at the earliest eta by a local timer, and the
  due message's enqueue on its queue wakes a consumer there;
- the ``BLPOP`` stays armed across waits (re-sent every ``REARM_S``): waiting costs no commands; a
  consumer that gets busy ends it (``CLIENT UNBLOCK``), so tokens only go to consumers that wait.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import dramatiq
import redis
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

from satworks import clock
from satworks.broker.messages import ACK_AFTER

if TYPE_CHECKING:
    from satworks.broker.redis import SatworksRedisBroker

WAKE_TOKENS_MAX = 32
"""Tokens a wake list holds at most: the idle consumers one burst of messages can wake."""

REARM_S = 30
"""Server-side timeout of the armed ``BLPOP``; a reply this late (plus ``worker_timeout``) means a dead
connection, which is then replaced."""

STOPPING_TICK_S = 0.05
"""While the worker shuts down, how often a waiting consumer returns so its thread can see the stop."""

# Why a wait ended.
TOKEN = "token"  # an enqueue's token: fetch
IDLE = "idle"  # worker_timeout passed since the last fetch: fetch (heartbeat, tokenless messages)
DUE = "due"  # a held delayed message is due: the consumer thread enqueues it
TICK = "tick"  # a short wait while stopping
INTERRUPT = "interrupt"  # the worker is shutting down

# Push up to ARGV[1] tokens onto the wake list KEYS[1], keeping at most WAKE_TOKENS_MAX.
WAKE = f"""
for _ = 1, math.min(tonumber(ARGV[1]), {WAKE_TOKENS_MAX} - redis.call("llen", KEYS[1])) do
    redis.call("rpush", KEYS[1], 1)
end
"""

# Keep no more tokens on the wake list KEYS[2] than messages wait on the queue KEYS[1]: a token left
# by a message another consumer already took would only cause an empty fetch. Atomic, so a token
# pushed with a new message is never dropped.
TRIM = """
local waiting = redis.call("llen", KEYS[1])
if waiting == 0 then
    redis.call("del", KEYS[2])
else
    redis.call("ltrim", KEYS[2], 0, waiting - 1)
end
"""

# ``ENQUEUE_MANY``'s tail (``satworks.broker.redis``): one token per message sent to each queue.
WAKE_SENT = f"""
for queue_full_name, count in pairs(sent) do
    local wake = queue_full_name .. ".wake"
    for _ = 1, math.min(count, {WAKE_TOKENS_MAX} - redis.call("llen", wake)) do
        redis.call("rpush", wake, 1)
    end
end
"""


def wake_key(namespace: str, queue_name: str) -> str:
    """The wake list of a queue (delay queues ``<q>.DQ`` have their own)."""
    return f"{namespace}:{queue_name}.wake"


class WakeWaiter:
    """One consumer's ``BLPOP`` on its wake list and its interrupt key, armed on a connection of its own.

    The ``BLPOP`` is sent once and read when the socket is readable; a wait that reaches its own
    deadline leaves it armed for the next, until ``disarm`` ends it (``CLIENT UNBLOCK``, so a token it
    took is returned, never lost). Redis errors are redis-py's.
    """

    def __init__(self, pool: redis.ConnectionPool, wake: str, interrupt: str, *, stale_after_s: float) -> None:
        self._pool = pool
        self._keys = (wake, interrupt)
        self._interrupt = interrupt.encode()
        self._stale_after_s = stale_after_s
        self._conn: Any = None
        self._client_id: int | None = None  # the connection's id on the server, for CLIENT UNBLOCK
        self._armed_at: float | None = None

    @property
    def armed(self) -> bool:
        return self._armed_at is not None

    def wait(self, timeout_s: float) -> str | None:
        """``TOKEN`` or ``INTERRUPT`` when one arrives within ``timeout_s``, else ``None``."""
        deadline = time.monotonic() + timeout_s
        with self._connection_lost():
            while True:
                now = time.monotonic()
                if self._armed_at is not None and now - self._armed_at > self._stale_after_s:
                    self._drop()  # no answer long past the BLPOP's own timeout: a dead connection
                if self._armed_at is None:
                    self._arm(now)
                if not self._conn.can_read(timeout=max(0.0, deadline - now)):
                    return None
                got = self._read()
                if got is not None or time.monotonic() >= deadline:
                    return got
                # The BLPOP timed out on the server: arm it again for the rest of this wait.

    def disarm(self, client: redis.Redis) -> str | None:
        """End the armed ``BLPOP`` through ``client``; returns what it had taken, if anything."""
        if self._armed_at is None or self._client_id is None:
            return None
        with self._connection_lost():
            client.client_unblock(self._client_id)  # answers at once: nil, or the token it already took
            return self._read()

    def close(self, client: redis.Redis) -> str | None:
        """Give the connection back; returns what the armed ``BLPOP`` had already taken (to pass on)."""
        if self._conn is None:
            return None
        got = None
        with contextlib.suppress(redis.ConnectionError):  # gone, and with it the BLPOP: nothing taken
            got = self.disarm(client)
        self._drop()
        self._pool.release(self._conn)
        self._conn = None
        return got

    def _arm(self, now: float) -> None:
        if self._conn is None:
            self._conn = self._pool.get_connection()
        if self._client_id is None:
            self._conn.send_command("CLIENT", "ID")
            self._client_id = int(self._conn.read_response())
        self._conn.send_command("BLPOP", *self._keys, REARM_S)
        self._armed_at = now

    def _read(self) -> str | None:
        reply = self._conn.read_response()
        self._armed_at = None
        if reply is None:
            return None
        return INTERRUPT if reply[0] == self._interrupt else TOKEN

    def _drop(self) -> None:
        if self._armed_at is not None:
            self._conn.disconnect()  # the server forgets a blocked client that goes away
            self._armed_at = self._client_id = None

    @contextlib.contextmanager
    def _connection_lost(self) -> Iterator[None]:
        try:
            yield
        except redis.ConnectionError:  # redis-py has closed the connection: its BLPOP and id are gone
            self._armed_at = self._client_id = None
            raise


class WakeupConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, waiting on its queue's wake list instead of sleeping when idle.

    ``__next__`` follows Dramatiq's own (checked by ``compat.WAKEUP_KNOWN``) except for the idle wait.
    ``wakes`` counts why waits ended, ``fetched_after`` which wake-up each fetch that found messages
    followed, and ``idle_since`` is when the current wait began (``None``: not waiting).
    """

    def __init__(self, broker: SatworksRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self.timeout_s = timeout / 1000
        self.wake_key = wake_key(broker.namespace, queue_name)
        self.interrupt_key = f"{broker.namespace}:__wake__.{broker.broker_id}.{queue_name}"
        self.stopping = False
        self.idle_since: float | None = None
        self.wakes: Counter[str] = Counter()
        self.fetched_after: Counter[str] = Counter()
        self._waiter = WakeWaiter(
            broker.client.connection_pool,
            self.wake_key,
            self.interrupt_key,
            stale_after_s=REARM_S + max(self.timeout_s, 1.0),
        )
        self._woken_by: str | None = None  # why the last wait ended; None: fetch next
        self._fetched_at = float("-inf")
        self._etas: dict[str, int] = {}  # held delayed messages: message id -> eta (unix ms)
        self._eta_heap: list[tuple[int, str]] = []

    def __next__(self) -> dramatiq.MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # an id whose message is gone from the hash (Dramatiq skips it too)
                        continue
                    self.misses = 0
                    message = dramatiq.Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    self._hold(message)
                    return dramatiq.MessageProxy(message)
                room = self.prefetch - self.outstanding_message_count
                if room <= 0:
                    self._wait_busy()
                    return None
                if self._woken_by in (None, TOKEN, IDLE):
                    woken_by, self._woken_by = self._woken_by, None
                    self._fetched_at = time.monotonic()
                    self.message_cache = self.broker.do_fetch(self.queue_name, room)
                    if self.message_cache:
                        self.fetched_after[woken_by or "start"] += 1
                        self._disarm()  # busy now: a token should go to a consumer that waits
                        continue
                    if woken_by == TOKEN:  # another consumer took the message
                        self.broker.trim_wake_tokens(self.queue_name)
                self._wait_idle()
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def ack(self, message: dramatiq.MessageProxy) -> None:
        self._settle(Settle(self, message, "ack"))

    def nack(self, message: dramatiq.MessageProxy) -> None:
        self._settle(Settle(self, message, "nack"))

    def _settle(self, settle: Settle) -> None:
        """Ack or nack now, or through the message's ``ACK_AFTER`` once what must precede it is done.
        A deferred message is processed: its place in the prefetch is free for the next fetch."""
        self._etas.pop(settle.message.message_id, None)
        after = getattr(settle.message, ACK_AFTER, None)
        if after is None:
            settle()
            return
        self.queued_message_ids.discard(settle.message.message_id)
        after(settle)

    def requeue(self, messages: Iterable[dramatiq.MessageProxy]) -> None:
        """Dramatiq's requeue (shutdown, lost connection), then tokens: the messages wait for someone."""
        messages = list(messages)
        super().requeue(messages)  # type: ignore[no-untyped-call]
        if messages:
            self.broker.wake(self.queue_name, len(messages))

    def close(self) -> None:
        try:
            if self._waiter.close(self.broker.client) == TOKEN:  # taken for a message this consumer won't fetch
                self.broker.wake(self.queue_name, 1)
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def interrupt(self, pipe: Any) -> None:
        """Shutting down: end the current wait (through ``pipe``) and from now on wait only briefly."""
        self.stopping = True
        pipe.rpush(self.interrupt_key, 1)
        pipe.pexpire(self.interrupt_key, 60_000)  # gone with the consumer if it never reads it

    def _wait_idle(self) -> None:
        """Wait for a token, the next periodic fetch, the earliest held eta or a stopping tick."""
        now = time.monotonic()
        deadline, why = self._fetched_at + self.timeout_s, IDLE
        eta = self._next_eta()
        if eta is not None:
            due = now + (eta + 1 - clock.unix_ms()) / 1000  # +1 ms: Dramatiq checks eta > now
            if due < deadline:
                deadline, why = due, DUE
        if self.stopping and now + STOPPING_TICK_S < deadline:
            deadline, why = now + STOPPING_TICK_S, TICK
        self.idle_since = now
        try:
            got = self._waiter.wait(max(0.0, deadline - now))
        finally:
            self.idle_since = None
        if got == INTERRUPT:
            self.stopping = True
        elif got is None and why == DUE:  # one wake-up per eta, even if the message stays held
            heapq.heappop(self._eta_heap)
        self._woken_by = got or why
        self.wakes[self._woken_by] += 1

    def _wait_busy(self) -> None:
        """Prefetch is full: Dramatiq's back-off, with no BLPOP armed."""
        self._disarm()
        self._woken_by = None  # fetch as soon as there is room
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        time.sleep(backoff_ms / 1000)

    def _disarm(self) -> None:
        """End a BLPOP left armed by the last wait, handing on a token it took (another consumer's)."""
        if self._waiter.armed:
            got = self._waiter.disarm(self.broker.client)
            if got == TOKEN:
                self.broker.wake(self.queue_name, 1)
            elif got == INTERRUPT:
                self.stopping = True

    def _hold(self, message: dramatiq.Message[Any]) -> None:
        eta = message.options.get("eta")
        if isinstance(eta, int | float):
            self._etas[message.message_id] = int(eta)
            heapq.heappush(self._eta_heap, (int(eta), message.message_id))

    def _next_eta(self) -> int | None:
        heap = self._eta_heap
        while heap and self._etas.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # acked since
        return heap[0][0] if heap else None


class Settle(NamedTuple):
    """One ack or nack of ``consumer``'s: run alone by calling it, or many in one round trip through
    ``SatworksRedisBroker.ack_all`` (deferred acks, ``ACK_AFTER``)."""

    consumer: WakeupConsumer
    message: dramatiq.MessageProxy
    command: Literal["ack", "nack"]

    def __call__(self) -> None:
        settle = _RedisConsumer.ack if self.command == "ack" else _RedisConsumer.nack
        settle(self.consumer, self.message)  # type: ignore[no-untyped-call]


class WakeupOnShutdown(Middleware):
    """Ends the consumers' waits when the worker starts shutting down, so it stops without delay."""

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        interrupt = getattr(broker, "interrupt_consumers", None)
        if interrupt is not None:
            interrupt()
