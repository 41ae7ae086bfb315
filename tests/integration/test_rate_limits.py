"""The shared rate limiter against real Redis: exact under concurrency and across processes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from redis.asyncio import Redis

from satworks.errors import RateLimited
from satworks.http.ratelimit import WindowLimiter


async def _admitted(limiter: WindowLimiter, subject: str, limit: int, attempts: int) -> int:
    async def one() -> bool:
        try:
            await limiter.hit(subject, limit)
            return True
        except RateLimited:
            return False

    return sum(await asyncio.gather(*(one() for _ in range(attempts))))


async def test_concurrent_requests_are_admitted_exactly_up_to_the_limit(settings: Any) -> None:
    redis = Redis.from_url(settings.redis_url)
    limiter = WindowLimiter(redis, namespace=f"test-rl-{uuid.uuid4().hex}")
    assert await _admitted(limiter, "app", 1_000, 1_500) == 1_000
    assert await limiter.count("app") <= 1_000 + 20  # leases never run far past the limit
    await redis.aclose()


async def test_processes_share_one_limit(settings: Any) -> None:
    redis_a, redis_b = Redis.from_url(settings.redis_url), Redis.from_url(settings.redis_url)
    namespace = f"test-rl-{uuid.uuid4().hex}"
    first, second = WindowLimiter(redis_a, namespace=namespace), WindowLimiter(redis_b, namespace=namespace)
    admitted = await asyncio.gather(_admitted(first, "app", 300, 400), _admitted(second, "app", 300, 400))
    assert sum(admitted) <= 300
    assert sum(admitted) >= 300 - 2 * 6  # at most one unused lease per process is lost
    await redis_a.aclose()
    await redis_b.aclose()
