"""Bearer API keys: verified in constant time against the stored hash, scopes enforced per route.

Resolved keys are cached in-process for ``auth_cache_ttl_s`` (default 5 s): a revoked key stops
working within that time. When an entry expires under load, one read refreshes it for every request
that needs it meanwhile (not one read each: a burst of reads every TTL would set the p99). Failed
attempts are counted per client address in Redis; past the limit the address is refused with 429
until the window ends. Each failure is an ``auth_failed`` audit row with the client address and nothing
of what was presented.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.db import apps as apps_db
from satworks.db import audit as audit_db
from satworks.db.apps import AppKey
from satworks.errors import Forbidden, RateLimited, Unauthorized
from satworks.http.ratelimit import WINDOW_S, WindowLimiter


@dataclass(frozen=True)
class _Cached:
    key: AppKey
    key_hash: str
    expires: float


class Authenticator:
    def __init__(
        self,
        engine: AsyncEngine,
        limiter: WindowLimiter,
        *,
        cache_ttl_s: float,
        failures_per_minute: int,
        default_rate_limit: int,
        trusted_proxies: frozenset[str],
    ) -> None:
        self._engine = engine
        self._limiter = limiter
        self._ttl = cache_ttl_s
        self._failures_per_minute = failures_per_minute
        self._default_rate_limit = default_rate_limit
        self._trusted_proxies = trusted_proxies
        self._cache: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Future[_Cached | None]] = {}
        self._blocked: dict[str, float] = {}

    async def authenticate(self, request: web.Request, scope: str) -> AppKey:
        if self._blocked and self._blocked.get(self.client_address(request), 0) > time.monotonic():
            raise RateLimited("too many failed authentication attempts", retry_after_s=WINDOW_S)
        header = request.headers.get("Authorization", "")
        key = await self._resolve(header)
        if key is None:
            client = self.client_address(request)
            await audit_db.record_failed_auth(self._engine, client, "missing key" if not header else "invalid key")
            await self._failed(client)
            raise Unauthorized("missing or invalid API key")
        if scope not in key.scopes:
            raise Forbidden(f"this key lacks the {scope!r} scope")
        await self._limiter.hit(f"app:{key.app_id}", key.rate_limit_per_minute or self._default_rate_limit)
        return key

    def client_address(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and peer in self._trusted_proxies:
            return forwarded.split(",")[-1].strip()
        return peer

    async def _resolve(self, header: str) -> AppKey | None:
        scheme, _, token = header.partition(" ")
        parts = apps_db.split_key(token.strip()) if scheme.lower() == "bearer" else None
        if parts is None:
            return None
        key_id, secret = parts
        cached = self._cache.get(key_id)
        if cached is None or cached.expires < time.monotonic():
            cached = await self._load(key_id)
        if cached is None or not apps_db.verify(secret, cached.key_hash):
            return None
        return cached.key

    async def _load(self, key_id: str) -> _Cached | None:
        """The key read from the database, once for all the requests that wait for it."""
        loading = self._loading.get(key_id)
        if loading is None:
            loading = self._loading[key_id] = asyncio.ensure_future(self._read(key_id))
            loading.add_done_callback(functools.partial(self._loaded, key_id))
        return await asyncio.shield(loading)  # a request that goes away does not cancel the others' read

    def _loaded(self, key_id: str, loading: asyncio.Future[_Cached | None]) -> None:
        self._loading.pop(key_id, None)
        if not loading.cancelled():
            loading.exception()  # seen by the waiting requests; retrieved here in case none is left

    async def _read(self, key_id: str) -> _Cached | None:
        stored = await apps_db.key_by_id(self._engine, key_id)
        if stored is None:
            self._cache.pop(key_id, None)
            return None
        cached = _Cached(stored.key, stored.key_hash, time.monotonic() + self._ttl)
        self._cache[key_id] = cached
        return cached

    async def _failed(self, client: str) -> None:
        try:
            await self._limiter.hit(f"authfail:{client}", self._failures_per_minute)
        except RateLimited:
            self._blocked[client] = time.monotonic() + WINDOW_S
            raise
