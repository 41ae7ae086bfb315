"""The Dramatiq internals satworks relies on, checked once against the installed Dramatiq.

``SatworksRedisBroker`` repeats what Dramatiq's ``dispatch.lua`` does for ``enqueue`` (one script
call for a whole batch) and calls that script itself, with its fixed arguments and
``RedisBroker._max_unpack_size()``, to recover dead workers on a schedule. Neither is public API, so
each use is guarded by a flag computed here from the installed Dramatiq's own script text:

- ``DISPATCH_KNOWN``: the dispatch script takes the arguments ``DISPATCH_ARGV`` in that order, and
  ``_max_unpack_size`` exists. Without it the reaper stays off (Dramatiq's own, random maintenance
  still recovers dead workers, only later).
- ``ACK_KNOWN``: its ``ack`` removes a message as ``ACK_MANY`` does. Without it deferred acks go
  through Dramatiq's own script, one call per message in a pipeline (slower, same result).
- ``ENQUEUE_KNOWN``: its ``enqueue`` writes a message as ``ENQUEUE_MANY`` does. Without it a batch
  goes through Dramatiq's own script, one call per message (slower, same result).
- ``WAKEUP_KNOWN``: its Redis consumer keeps the state ``satworks.broker.wakeup.WakeupConsumer``
  shares (``message_cache``, ``queued_message_ids``, ``misses``, ``prefetch``, ``timeout``), its
  ``__next__`` reads it as checked in ``_CONSUMER_LINES``, and ``fetch`` pops the queue's list.
  Without it consumers are Dramatiq's own: idle wake-up falls back to its polling (up to
  ``worker_timeout``, 1 s), nothing else changes.

pyproject pins ``dramatiq>=2,<3``; the flags catch a change within that range.
"""

from __future__ import annotations

import inspect

import dramatiq
from dramatiq.brokers import redis as dramatiq_redis

DRAMATIQ_MAJOR = int(dramatiq.__version__.split(".")[0])

DISPATCH_ARGV = (
    "command",
    "timestamp",
    "queue_name",
    "worker_id",
    "heartbeat_timeout",
    "dead_message_ttl",
    "do_maintenance",
    "max_unpack_size",
)
"""The dispatch script's fixed arguments, in order (``RedisBroker._dispatch`` sends them so)."""

# The lines of the dispatch script that ``ENQUEUE_MANY`` (``satworks.broker.redis``) repeats.
_ENQUEUE_LINES = (
    'local heartbeats = namespace .. ":__heartbeats__"',
    'redis.call("zadd", heartbeats, timestamp, worker_id)',
    'local queue_full_name = namespace .. ":" .. queue_name',
    'local queue_messages = queue_full_name .. ".msgs"',
    'redis.call("hset", queue_messages, message_id, message_data)',
    'redis.call("rpush", queue_full_name, message_id)',
)

_DISPATCH_LUA: str = dramatiq_redis._scripts.get("dispatch", b"").decode()
_ARGV_LINES = tuple(f"local {name} = ARGV[{i}]" for i, name in enumerate(DISPATCH_ARGV, start=1))

DISPATCH_KNOWN = (
    DRAMATIQ_MAJOR == 2
    and all(line in _DISPATCH_LUA for line in _ARGV_LINES)
    and callable(getattr(dramatiq_redis.RedisBroker, "_max_unpack_size", None))
)
ENQUEUE_KNOWN = DISPATCH_KNOWN and all(line in _DISPATCH_LUA for line in _ENQUEUE_LINES)

# The lines of the dispatch script that ``ACK_MANY`` (``satworks.broker.redis``) repeats.
_ACK_LINES = (
    'redis.call("zadd", heartbeats, timestamp, worker_id)',
    'local acks = namespace .. ":__acks__." .. worker_id',
    'local queue_acks = acks .. "." .. queue_name',
    'local queue_messages = queue_full_name .. ".msgs"',
    'elseif command == "ack" then',
    'if redis.call("srem", queue_acks, message_id) > 0 then',
    'redis.call("hdel", queue_messages, message_id)',
)
ACK_KNOWN = DISPATCH_KNOWN and all(line in _DISPATCH_LUA for line in _ACK_LINES)

# What ``WakeupConsumer.__next__`` repeats of ``_RedisConsumer.__next__``, and how ``fetch`` takes messages.
_CONSUMER_LINES = (
    "data = self.message_cache.pop(0)",
    "self.misses = 0",
    "message = Message.decode(data)",
    "self.queued_message_ids.add(message.message_id)",
    "return MessageProxy(message)",
    "if self.outstanding_message_count < self.prefetch:",
    "self.message_cache = messages = self.broker.do_fetch(",
    "self.prefetch - self.outstanding_message_count,",
    "self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)",
)
_FETCH_LINES = (
    'elseif command == "fetch" then',
    'local message_id = redis.call("lpop", queue_full_name)',
    'redis.call("sadd", queue_acks, message_id)',
)


def _consumer_known() -> bool:
    consumer_class = getattr(dramatiq_redis, "_RedisConsumer", None)
    if consumer_class is None:
        return False
    try:
        source = inspect.getsource(consumer_class.__next__)
        probe = consumer_class(None, "probe", 1, 1000)  # __init__ only stores its arguments
    except (OSError, TypeError):  # no source installed, or a different constructor
        return False
    return (
        all(line in source for line in _CONSUMER_LINES)
        and isinstance(getattr(probe, "message_cache", None), list)
        and isinstance(getattr(probe, "queued_message_ids", None), set)
        and getattr(probe, "misses", None) == 0
        and (probe.prefetch, probe.timeout, probe.queue_name) == (1, 1000, "probe")
        and probe.outstanding_message_count == 0
    )


WAKEUP_KNOWN = ENQUEUE_KNOWN and all(line in _DISPATCH_LUA for line in _FETCH_LINES) and _consumer_known()
