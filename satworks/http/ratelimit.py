"""Per-key request limits in fixed one-minute windows, shared by every intake process through Redis.

Each process leases a slice of the window's quota with one ``INCRBY`` and spends it locally, so a
busy app costs one Redis round trip per slice, not per request, and the global limit still holds
(a lease never grants past the limit; unused leases simply lapse with their window).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from satworks import clock
from satworks.errors import DependencyUnavailable, RateLimited

WINDOW_S = 60


@dataclass
class _Lease:
    window: int
    remaining: int
    exhausted: bool = False  # the window's quota is gone everywhere: refuse without asking Redis
    refill: asyncio.Lock = field(default_factory=asyncio.Lock)


class WindowLimiter:
    def __init__(self, redis: Redis, *, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self._leases: dict[str, _Lease] = {}
        self._window = 0

    async def hit(self, subject: str, limit: int) -> None:
        """Spend one request for ``subject``; raise ``RateLimited`` when the window's quota is gone."""
        window = clock.unix_s() // WINDOW_S
        if window != self._window:  # leases of past windows are worthless: keep only the subjects seen now
            self._window = window
            self._leases = {s: lease for s, lease in self._leases.items() if lease.window >= window}
        lease = self._leases.get(subject)
        if lease is None or lease.window != window:
            lease = self._leases[subject] = _Lease(window, 0)
        if lease.remaining == 0 and not lease.exhausted:
            async with lease.refill:  # one lease request at a time; the others wait and share it
                if lease.remaining == 0 and not lease.exhausted:
                    granted = await self._lease(subject, window, limit)
                    lease.remaining += granted
                    lease.exhausted = granted == 0
        if lease.remaining == 0:
            retry_after = WINDOW_S - clock.unix_s() % WINDOW_S
            raise RateLimited(f"rate limit of {limit} requests per minute exceeded", retry_after_s=retry_after)
        lease.remaining -= 1

    async def count(self, subject: str) -> int:
        """Requests counted in the current window (all processes)."""
        window = clock.unix_s() // WINDOW_S
        try:
            value = await self._redis.get(self._key(subject, window))
        except RedisError as exc:
            raise DependencyUnavailable("redis unavailable", details={"dependency": "redis"}) from exc
        return int(value or 0)

    async def _lease(self, subject: str, window: int, limit: int) -> int:
        chunk = max(1, min(100, limit // 50))
        key = self._key(subject, window)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, chunk)
                pipe.expire(key, WINDOW_S * 2)
                total, _ = await pipe.execute()
        except RedisError as exc:
            raise DependencyUnavailable("redis unavailable", details={"dependency": "redis"}) from exc
        return max(0, min(chunk, limit - (int(total) - chunk)))

    def _key(self, subject: str, window: int) -> str:
        return f"{self._namespace}:{subject}:{window}"
