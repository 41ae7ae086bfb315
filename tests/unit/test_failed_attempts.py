"""Failed authentication attempts: the in-process memory of blocked subjects stays bounded."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from satworks.errors import RateLimited
from satworks.http.failures import FailedAttempts
from tests.conftest import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_blocked_subjects_are_remembered_up_to_the_bound_oldest_first_forgotten(redis: Redis) -> None:
    namespace = f"satworks:test-failures-{uuid.uuid4().hex}"
    failures = FailedAttempts(redis, namespace=namespace, limit=1, max_tracked=3)
    try:
        for n in range(10):  # ten addresses, each over its limit: more than the memory holds
            await failures.failed(f"addr:{n}")
            with pytest.raises(RateLimited):
                await failures.failed(f"addr:{n}")
        assert failures.tracked == 3
        assert [failures.blocked(f"addr:{n}") is not None for n in (0, 6, 7, 8, 9)] == [False, False, True, True, True]
    finally:
        keys = [key async for key in redis.scan_iter(f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
