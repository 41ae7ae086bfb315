"""At most N simultaneous SMTP sessions across every worker: Dramatiq's ``ConcurrentRateLimiter`` on Redis.

A send takes a slot before it connects and gives it back after QUIT. A thread that finds every slot
taken polls for a free one for up to ``wait_s`` (10 ms doubling to 100 ms, jittered) before its job
gives up and is retried later: a burst of emails waits in the broker, not in a storm of connections,
and a slot freed is taken within ~100 ms rather than after a retry's backoff.

The limiter is one Redis counter (``satworks:<prefix>smtp-sessions``). A worker killed during a
session never gives its slot back: the counter is one too high until the key has not been touched
for ``ttl_ms`` (the limiter refreshes the TTL on every change), i.e. until the relay has been idle
that long. docs/operations.md says how to reset it by hand.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from satworks.errors import DependencyUnavailable


def slots_key(queue_prefix: str) -> str:
    return f"satworks:{queue_prefix}smtp-sessions"


class SessionCap:
    def __init__(self, redis_url: str, *, key: str, limit: int, ttl_ms: int, wait_s: float = 2.0) -> None:
        self.key = key
        self.limit = limit
        self.wait_s = wait_s
        client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=10)
        backend = RedisBackend(client=client)
        self._limiter = ConcurrentRateLimiter(backend, key, limit=limit, ttl=ttl_ms)  # type: ignore[no-untyped-call]

    @contextmanager
    def session(self) -> Iterator[bool]:
        """Yields True holding a slot (released on exit), or False when none came free in ``wait_s``.

        Raises ``DependencyUnavailable`` when Redis cannot be asked."""
        deadline = time.monotonic() + self.wait_s
        pause_s = 0.01
        while True:
            try:
                with self._limiter.acquire(raise_on_failure=False) as acquired:
                    if acquired or time.monotonic() >= deadline:
                        yield acquired
                        return
            except redis.RedisError as exc:
                raise DependencyUnavailable("redis unavailable", details={"dependency": "redis"}) from exc
            time.sleep(random.uniform(pause_s / 2, pause_s))  # a slot frees when another send ends
            pause_s = min(0.1, pause_s * 2)
