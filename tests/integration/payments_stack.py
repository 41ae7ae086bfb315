"""A whole payments stack per test: the regtest node simulator, a worker pool and the intake.

The node is driven only through its JSON-RPC surface (``payer``), exactly as a test would drive a real
regtest bitcoind; the same tests could run against one by pointing ``rpc_url`` at it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient
from bitcoinrpc.authproxy import AuthServiceProxy

from satworks.settings import Settings
from tests.integration.bitcoind_fixtures import BitcoindNode
from tests.support import WorkerProcess, eventually, scalar

NODE_TOKEN = "node-token-0123456789abcdef"
WATCHER_SECRET = "watcher-secret-0123456789"


@dataclass
class PaymentStack:
    client: TestClient[Any, Any]
    settings: Settings
    node: BitcoindNode
    worker: WorkerProcess
    auth: dict[str, str]

    def payer(self) -> AuthServiceProxy:
        """A fresh RPC proxy (python-bitcoinrpc proxies are not thread-safe)."""
        return AuthServiceProxy(self.node.url, timeout=10)

    def node_warming_up(self, seconds: float) -> None:
        """The node answers -28 to every call for ``seconds``, like a restarting bitcoind."""
        self.node.call_soon(self.node.sim.set_warming_up, seconds)

    async def rpc(self, method: str, *params: Any) -> Any:
        return await asyncio.to_thread(lambda: getattr(self.payer(), method)(*params))

    async def mine(self, blocks: int = 1) -> list[str]:
        address = await self.rpc("getnewaddress")
        hashes: list[str] = await self.rpc("generatetoaddress", blocks, address)
        return hashes

    async def fund(self) -> None:
        """Mature some coinbase so the payer can spend (regtest: 100 confirmations)."""
        await self.mine(101)

    async def pay(self, address: str, sat: int, *, replaceable: bool = True) -> str:
        amount = (Decimal(sat) / 100_000_000).quantize(Decimal("0.00000001"))
        txid: str = await self.rpc("sendtoaddress", address, amount, "", "", False, replaceable)
        return txid

    async def create(self, **body: Any) -> dict[str, Any]:
        body = {"method": "onchain", **body}
        response = await self.client.post("/v1/payments", json=body, headers=self.auth)
        assert response.status == 202, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def get(self, payment_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/payments/{payment_id}", headers=self.auth)
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def wait_for(self, payment_id: str, *statuses: str, timeout_s: float = 20, **fields: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            document = await self.get(payment_id)
            ok = document["status"] in statuses and all(document[k] == v for k, v in fields.items())
            return document if ok else None

        return await eventually(check, timeout_s=timeout_s, what=f"payment {payment_id} to be {statuses} {fields}")

    async def created(self, **body: Any) -> dict[str, Any]:
        """Create a request and wait until the node has handed out its address."""
        payment = await self.create(**body)
        return await self.wait_for(payment["id"], "new")

    def events(self, payment_id: str) -> list[str]:
        return list(
            scalar(
                self.settings,
                "SELECT coalesce(array_agg(type ORDER BY id), '{}') FROM app_events WHERE subject_id = %s",
                payment_id,
            )
        )
