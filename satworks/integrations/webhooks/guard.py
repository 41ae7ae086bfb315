"""The SSRF guard: webhooks reach only http(s) URLs on globally routable addresses, unless allowed.

Two checks, both raising ``UnsafeWebhookUrl``: ``check_url`` before a request (scheme, host, IP
literals), and ``resolver.GuardedResolver`` as the HTTP client's only resolver, so the addresses checked
after DNS are exactly those connected to (no second lookup an attacker's DNS could answer
differently); the URL, and so the Host header and TLS SNI, keep the name. A name with one refused
address is refused whole. IPv4 addresses embedded in IPv6 (mapped, 6to4, Teredo, NAT64) are checked
as the IPv4 address they reach.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from yarl import URL

from satworks.errors import UnsafeWebhookUrl

log = logging.getLogger("satworks.webhooks")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class AddressPolicy:
    """Non-global addresses are refused unless inside ``allowed_networks`` or reached through a name in
    ``allowed_hosts``; multicast and unspecified addresses never pass (nothing answers HTTP there)."""

    allowed_networks: tuple[Network, ...] = ()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, networks: Iterable[Network | str] = (), hosts: Iterable[str] = ()) -> AddressPolicy:
        return cls(
            allowed_networks=tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in networks),
            allowed_hosts=frozenset(h.lower().rstrip(".") for h in hosts),
        )

    def refusal(self, address: Address, host: str | None = None) -> str | None:
        """Why ``address`` (reached through ``host``) is refused, or None when it may be connected to."""
        if address.is_multicast or address.is_unspecified:
            return "a multicast or unspecified address"
        if host is not None and host.lower().rstrip(".") in self.allowed_hosts:
            return None
        if any(address in network for network in self.allowed_networks if network.version == address.version):
            return None
        for candidate in _reached(address):
            if not candidate.is_global or candidate.is_multicast or candidate.is_unspecified:
                return f"a non-public address ({_kind(candidate)})"
        return None


def check_url(url: str, policy: AddressPolicy) -> URL:
    """``url`` parsed; raises ``UnsafeWebhookUrl`` unless http(s) with a host, and an allowed one if a literal."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise UnsafeWebhookUrl("not a valid URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("only http and https URLs are allowed", details={"scheme": parsed.scheme})
    host = parsed.raw_host
    if not host:
        raise UnsafeWebhookUrl("the URL has no host")
    literal = _literal(host)
    if literal is not None:
        reason = policy.refusal(literal)
        if reason is not None:
            refuse(host, str(literal), f"{host} is {reason}")
    return parsed


def refuse(host: str, address: str, message: str) -> NoReturn:
    """Log the refusal (host and address only) and raise ``UnsafeWebhookUrl``."""
    log.warning("webhook address refused", extra={"action": "webhook_refused", "host": host, "address": address})
    raise UnsafeWebhookUrl(message, details={"host": host, "address": address})


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return None


def _reached(address: Address) -> list[Address]:
    """The address and any IPv4 address it carries (where traffic to it would really go)."""
    found: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        found.extend(e for e in embedded if e is not None)
    return found


def _kind(address: Address) -> str:
    for name in ("loopback", "link_local", "private", "reserved", "site_local"):
        if getattr(address, f"is_{name}", False):
            return f"{name.replace('_', '-')} {address}"
    return f"not globally routable {address}"
