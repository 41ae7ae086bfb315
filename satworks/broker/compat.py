"""The Dramatiq internals satworks relies on, checked once against the installed Dramatiq.

``SatworksRedisBroker`` repeats what Dramatiq's ``dispatch.lua`` does for ``enqueue`` (one script
call for a whole batch) and calls that script itself, with its fixed arguments and
``RedisBroker._max_unpack_size()``, to recover dead workers on a schedule. Neither is public API, so
each use is guarded by a flag computed here from the installed Dramatiq's own script text:

- ``DISPATCH_KNOWN``: the dispatch script takes the arguments ``DISPATCH_ARGV`` in that order, and
  ``_max_unpack_size`` exists. Without it the reaper stays off (Dramatiq's own, random maintenance
  still recovers dead workers, only later).
- ``ENQUEUE_KNOWN``: its ``enqueue`` writes a message as ``ENQUEUE_MANY`` does. Without it a batch
  goes through Dramatiq's own script, one call per message (slower, same result).

pyproject pins ``dramatiq>=2,<3``; the flags catch a change within that range.
"""

from __future__ import annotations

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
