"""Simulated lnd nodes on one network, served from a background thread with its own event loop.

The thread makes the nodes reachable from blocking code (the grpcio client), async tests and other
processes alike. ``lnd_network`` gives a ``merchant``, a ``payer`` and a second payer ``payer2``::

    client = lnd.client("merchant")               # an LndClient with the node's cert and macaroon
    lnd.stop("merchant"); lnd.start("merchant")   # node down / back on the same port, state kept
    lnd.call(lnd.node("merchant").faults.fail_next, "GetInfo", grpc.StatusCode.UNAVAILABLE)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from satworks.devnodes.lnd.node import Network, NodeConfig, SimNode
from satworks.integrations.lnd.client import LndClient

T = TypeVar("T")
HOST = "127.0.0.1"
ALIASES = ("merchant", "payer", "payer2")


class LndNetwork:
    def __init__(self, datadir: Path, aliases: tuple[str, ...] = ALIASES, **config: Any) -> None:
        self.datadir = datadir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lnd-sim", daemon=True)
        self._thread.start()
        self._clients: list[LndClient] = []
        self.network = Network()
        self.nodes = {alias: self._new_node(alias, **config) for alias in aliases}
        for alias in aliases:
            self.start(alias)

    def _new_node(self, alias: str, **config: Any) -> SimNode:
        async def make() -> SimNode:
            return SimNode(NodeConfig(alias=alias, datadir=self.datadir / alias, **config), self.network)

        return self._run(make())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def node(self, alias: str) -> SimNode:
        return self.nodes[alias]

    def target(self, alias: str) -> str:
        return f"{HOST}:{self.nodes[alias].port}"

    def client(self, alias: str, *, macaroon_hex: str | None = None, timeout_s: float = 5.0) -> LndClient:
        node = self.nodes[alias]
        client = LndClient(
            self.target(alias),
            tls_cert_path=node.files.tls_cert,
            macaroon_path=None if macaroon_hex is not None else node.files.macaroon,
            macaroon_hex=macaroon_hex,
            timeout_s=timeout_s,
        )
        self._clients.append(client)
        return client

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the simulator's loop (node state belongs to that loop)."""

        async def run() -> T:
            return fn(*args)

        return self._run(run())

    def start(self, alias: str) -> None:
        node = self.nodes[alias]
        self._run(node.start(HOST, node.port or 0))

    def stop(self, alias: str) -> None:
        self._run(self.nodes[alias].stop())

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for node in self.nodes.values():
            self._run(node.stop())
            node.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def running_lnd(datadir: Path, **config: Any) -> Iterator[LndNetwork]:
    network = LndNetwork(datadir, **config)
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def lnd_network(tmp_path: Path) -> Iterator[LndNetwork]:
    with running_lnd(tmp_path / "lnd") as network:
        yield network
