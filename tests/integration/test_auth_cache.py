"""The intake's key cache against the real database: an expired key is read once per burst."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from redis.asyncio import Redis

from satworks.db import apps as apps_db
from satworks.db.engine import async_engine
from satworks.http import auth
from satworks.http.auth import Authenticator
from satworks.http.clients import ClientAddress
from satworks.http.failures import FailedAttempts
from satworks.http.ratelimit import WindowLimiter
from satworks.settings import Settings

BURST = 20


async def test_an_expired_key_is_read_once_for_all_the_requests_that_wait_for_it(
    settings: Settings, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    real_read = apps_db.key_by_id

    async def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_read(*args)

    monkeypatch.setattr(auth.apps_db, "key_by_id", counted)
    engine = async_engine(settings.database_url, pool_size=2)
    redis = Redis.from_url(settings.redis_url)
    authenticator = Authenticator(
        engine,
        WindowLimiter(redis, namespace=f"satworks:rl:{settings.queue_prefix}"),
        FailedAttempts(redis, namespace=f"satworks:{settings.queue_prefix}authfail", limit=5),
        cache_ttl_s=0,  # every entry is expired by the next burst
        default_rate_limit=1_000,
        client_address=ClientAddress([]),
    )
    request = make_mocked_request("POST", "/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    try:
        first = await asyncio.gather(*(authenticator.authenticate(request, "jobs") for _ in range(BURST)))
        assert reads == 1
        second = await asyncio.gather(*(authenticator.authenticate(request, "jobs") for _ in range(BURST)))
        assert reads == 2  # expired again: read again, once
        assert {k.app_id for k in first + second} == {first[0].app_id}
    finally:
        await redis.aclose()
        await engine.dispose()
