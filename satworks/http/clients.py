"""The client's address behind trusted proxies: ``X-Forwarded-For`` walked back hop by hop from the right.

Each trusted proxy appends the address it received the request from, so the header's right end is
written by the proxy next to us and its left end by whoever sent the request. Starting from the peer,
every address that is a trusted proxy (an address or CIDR network of ``SATWORKS_TRUSTED_PROXIES``) hands
over to the one before it; the first address that is not trusted is the client. A peer that is not
trusted is the client itself, whatever its header says; an entry that is not an IP address stops the
walk at the last trusted hop.

aiohttp-remotes was weighed for this: its ``XForwardedFiltered`` believes the header from any peer (so a
direct client could pick its own address and escape the failed-auth limit), ``XForwardedStrict`` demands
an exact number of hops and answers a plain-text 400 outside our error shape, and both clone every
request in a middleware, while the intake needs the address only when authentication fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

Network = IPv4Network | IPv6Network


class ClientAddress:
    def __init__(self, trusted: Iterable[Network]) -> None:
        self._trusted = tuple(trusted)

    def __call__(self, request: web.Request) -> str:
        """The address failed attempts are counted against (``"unknown"`` without a peer)."""
        peer = request.remote or "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")]
        client = peer
        for hop in reversed(hops):
            if not hop:
                continue
            if not self._is_trusted(client):
                return client
            try:
                client = str(ip_address(hop))
            except ValueError:
                return client  # garbage from beyond the last trusted hop: that hop is the client
        return client

    def _is_trusted(self, address: str) -> bool:
        try:
            ip: IPv4Address | IPv6Address = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)
