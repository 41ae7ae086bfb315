"""Bearer API keys: verified in constant time against the stored hash, scopes enforced per route.

Resolved keys are cached in-process for ``auth_cache_ttl_s`` (default 5 s): a revoked key stops
working within that time. When an entry expires under load, one read refreshes it for every request
that needs it meanwhile (not one read each: a burst of reads every TTL would set the p99). Failed
attempts are counted per client address and per key id (``FailedAttempts``),
``auth_failures_per_minute`` each, and each is an ``auth_failed`` audit row with the client address and
nothing of what was presented:

- an address past the limit gets 429 instead of 401 for its further failures until the window ends,
  but valid keys from it keep working: one app's bad keys do not lock out the others behind a NAT;
- a key id past the limit is refused (429), even with its right secret, until the window ends: a
  guessing attack on one key stops wherever it comes from.
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
from satworks.http.clients import ClientAddress
from satworks.http.failures import FailedAttempts
from satworks.http.ratelimit import WindowLimiter

BEARER_EXPECTED = "send the key as 'Authorization: Bearer <key>'"


@dataclass(frozen=True)
class _Cached:
    key: AppKey
    key_hash: str
    expires: float
    subject: str  # the app's rate-limit subject, formatted once per read rather than per request


class Authenticator:
    def __init__(
        self,
        engine: AsyncEngine,
        limiter: WindowLimiter,
        failures: FailedAttempts,
        *,
        cache_ttl_s: float,
        default_rate_limit: int,
        client_address: ClientAddress,
    ) -> None:
        self._engine = engine
        self._limiter = limiter
        self.failures = failures
        self._ttl = cache_ttl_s
        self._default_rate_limit = default_rate_limit
        self.client_address = client_address
        self._cache: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Future[_Cached | None]] = {}

    async def authenticate(self, request: web.Request, scope: str) -> AppKey:
        """The caller's key; raises ``Unauthorized`` (401), ``Forbidden`` (403) or ``RateLimited`` (429)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        parts = apps_db.split_key(token.strip()) if scheme.lower() == "bearer" else None
        if parts is not None and (left := self.failures.blocked(f"key:{parts[0]}")) is not None:
            raise RateLimited("too many failed authentication attempts with this key", retry_after_s=left)
        cached = await self._resolve(*parts) if parts is not None else None
        if cached is None:
            subjects = [f"addr:{self.client_address(request)}"] + ([f"key:{parts[0]}"] if parts else [])
            await self.refuse(request, "missing key" if not scheme else "invalid key", *subjects)
            raise Unauthorized(_problem(scheme, parts is not None))
        key = cached.key
        if scope not in key.scopes:
            raise Forbidden(f"this key lacks the {scope!r} scope")
        await self._limiter.hit(cached.subject, key.rate_limit_per_minute or self._default_rate_limit)
        return key

    async def refuse(self, request: web.Request, reason: str, subject: str, *more: str) -> None:
        """A failed authentication, of an API key or of a webhook: an ``auth_failed`` audit row with the
        client address and ``reason``, nothing of what was presented (none while ``subject`` is blocked:
        a blocked client adds no rows), then the failure counted against each subject. Raises
        ``RateLimited`` past the limit."""
        if self.failures.blocked(subject) is None:
            await audit_db.record_failed_auth(self._engine, self.client_address(request), reason)
        await self.failures.failed(subject, *more)

    async def _resolve(self, key_id: str, secret: str) -> _Cached | None:
        cached = self._cache.get(key_id)
        if cached is None or cached.expires < time.monotonic():
            cached = await self._load(key_id)
        if cached is None or not apps_db.verify(secret, cached.key_hash):
            return None
        return cached

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
        cached = _Cached(stored.key, stored.key_hash, time.monotonic() + self._ttl, f"app:{stored.key.app_id}")
        self._cache[key_id] = cached
        return cached


def _problem(scheme: str, well_formed: bool) -> str:
    if not scheme:
        return f"missing API key: {BEARER_EXPECTED}"
    if scheme.lower() != "bearer":
        return f"the Authorization scheme must be Bearer: {BEARER_EXPECTED}"
    return "invalid API key" if well_formed else "malformed API key: keys look like sw_<12 hex>_<secret>"
