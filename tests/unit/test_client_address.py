"""The client address behind trusted proxies: X-Forwarded-For walked back through trusted hops."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from aiohttp.test_utils import make_mocked_request

from satworks.http.clients import ClientAddress

PROXIES = ClientAddress([ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"), ip_network("fd00::/8")])


def client_of(peer: str, forwarded: str | None, address: ClientAddress = PROXIES) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("GET", "/", headers=headers, transport=_Transport(peer))
    return address(request)


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 4711) if name == "peername" else default


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", "198.51.100.9, 10.0.0.1", "198.51.100.9"),  # behind two trusted proxies
        ("127.0.0.1", "203.0.113.5, 198.51.100.9, 10.0.0.1", "198.51.100.9"),  # a spoofed entry is ignored
        ("10.2.3.4", "198.51.100.9", "198.51.100.9"),  # a CIDR network, not an exact string
        ("127.0.0.1", "10.0.0.2, 10.0.0.1", "10.0.0.2"),  # all trusted: the leftmost
        ("127.0.0.1", "garbage, 10.0.0.1", "10.0.0.1"),  # the walk stops at the last trusted hop
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("198.51.100.1", "10.0.0.1", "198.51.100.1"),  # an untrusted peer's header is not believed
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(peer: str, forwarded: str | None, client: str) -> None:
    assert client_of(peer, forwarded) == client


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_of("127.0.0.1", "198.51.100.9", ClientAddress([])) == "127.0.0.1"
