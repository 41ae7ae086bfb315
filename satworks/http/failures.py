"""Failed authentication attempts, counted per subject in one-minute windows shared through Redis.

A subject is a client address (``addr:198.51.100.9``), an API key id (``key:0a1b2c3d4e5f``) or a
webhook's client (``node:…``, ``watcher:…``). Each failure is one ``INCR``; only failures cost a
round trip. Once a subject is past its limit in the current window, ``failed`` raises ``RateLimited``
and the subject is remembered in this process until the window ends, so ``blocked`` answers without
Redis. That memory is bounded: expired entries are dropped as new ones come, and past
``max_tracked`` subjects the oldest go first (another process, or Redis, still counts them).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from satworks import clock
from satworks.errors import DependencyUnavailable, RateLimited
from satworks.http.ratelimit import WINDOW_S


class FailedAttempts:
    def __init__(self, redis: Redis, *, namespace: str, limit: int, max_tracked: int = 10_000) -> None:
        self._redis = redis
        self._namespace = namespace
        self.limit = limit
        self._max_tracked = max_tracked
        self._blocked: dict[str, float] = {}  # subject -> monotonic end of its block; insertion-ordered

    def blocked(self, subject: str) -> int | None:
        """Seconds until ``subject`` may try again, if this process saw it go past the limit."""
        until = self._blocked.get(subject) if self._blocked else None
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[subject]
            return None
        return max(1, round(left))

    async def failed(self, *subjects: str) -> None:
        """Count one failure for each subject; raise ``RateLimited`` when one of them is past the limit."""
        window = clock.unix_s() // WINDOW_S
        keys = [f"{self._namespace}:{subject}:{window}" for subject in subjects]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_S * 2)
                counts = (await pipe.execute())[::2]
        except RedisError as exc:
            raise DependencyUnavailable("redis unavailable", details={"dependency": "redis"}) from exc
        over = [subject for subject, count in zip(subjects, counts, strict=True) if int(count) > self.limit]
        if over:
            retry_after = WINDOW_S - clock.unix_s() % WINDOW_S
            for subject in over:
                self._remember(subject, retry_after)
            raise RateLimited("too many failed authentication attempts", retry_after_s=retry_after)

    def _remember(self, subject: str, seconds: int) -> None:
        now = time.monotonic()
        if len(self._blocked) >= self._max_tracked:
            self._blocked = {s: until for s, until in self._blocked.items() if until > now}
            while len(self._blocked) >= self._max_tracked:  # still full: the oldest blocks go first
                del self._blocked[next(iter(self._blocked))]
        self._blocked.pop(subject, None)
        self._blocked[subject] = now + seconds

    @property
    def tracked(self) -> int:
        """Subjects remembered as blocked in this process (bounded by ``max_tracked``)."""
        return len(self._blocked)
