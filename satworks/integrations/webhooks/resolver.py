"""The SSRF guard's second check, after DNS: the HTTP client's only resolver (see ``guard``).

A module of its own because it subclasses aiohttp's resolver: ``guard`` stays free of aiohttp, so a
worker imports aiohttp only when its first webhook goes out.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from satworks.integrations.webhooks.guard import AddressPolicy, refuse


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (the system resolver by default) and refuses names reaching refused addresses."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].partition("%")[0])
            reason = self.policy.refusal(address, host)
            if reason is not None:
                refuse(host, str(address), f"{host} resolves to {reason}")
        return results

    async def close(self) -> None:
        await self.inner.close()
