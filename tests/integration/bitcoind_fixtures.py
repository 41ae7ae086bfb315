"""A simulated regtest bitcoind on a free 127.0.0.1 port, in a background thread with its own loop.

The thread makes the node reachable from blocking code (python-bitcoinrpc), from async tests and
from other processes alike. Use the ``bitcoind_node`` fixture (import it into a test module or a
conftest) or ``running_bitcoind(config)`` directly::

    url, sim = node                 # url = http://user:pass@127.0.0.1:PORT
    node.sim_stop(); node.sim_start()   # node down / restart on the same port, state kept
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from satworks.devnodes.bitcoind.server import BitcoindConfig, BitcoindSim

T = TypeVar("T")
HOST = "127.0.0.1"


class BitcoindNode:
    """A running simulator; unpacks as ``(url, sim)``."""

    def __init__(self, config: BitcoindConfig) -> None:
        self.config = config
        self.sim = BitcoindSim(config)
        self._loop = asyncio.new_event_loop()
        self._cleanups: list[Callable[[], object]] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="bitcoind-sim", daemon=True)
        self._thread.start()
        self._run(self.sim.start(HOST, 0))
        assert self.sim.port is not None
        self.port: int = self.sim.port
        self.url = f"http://{config.rpc_user}:{config.rpc_password}@{HOST}:{self.port}"

    def __iter__(self) -> Iterator[Any]:
        return iter((self.url, self.sim))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def call_soon(self, fn: Any, *args: Any) -> None:
        """Run a plain function on the simulator's loop (e.g. ``sim.set_warming_up``)."""
        self._run(_call(fn, *args))

    def read(self, fn: Callable[[], T]) -> T:
        """Evaluate ``fn`` on the simulator's loop (e.g. ``lambda: sim.open_connections``)."""
        return self._run(_value(fn))

    def sim_stop(self) -> None:
        self._run(self.sim.stop())

    def sim_start(self) -> None:
        self._run(self.sim.start(HOST, self.port))

    def add_cleanup(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` when the node closes (e.g. close a client's connection)."""
        self._cleanups.append(fn)

    def close(self) -> None:
        for fn in reversed(self._cleanups):
            fn()
        self.sim_stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _call(fn: Any, *args: Any) -> None:
    fn(*args)


async def _value(fn: Callable[[], T]) -> T:
    return fn()


@contextmanager
def running_bitcoind(config: BitcoindConfig | None = None) -> Iterator[BitcoindNode]:
    node = BitcoindNode(config or BitcoindConfig(rpc_user="user", rpc_password="pass"))
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def bitcoind_node() -> Iterator[BitcoindNode]:
    with running_bitcoind() as node:
        yield node
