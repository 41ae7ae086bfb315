"""A whole payments stack per test: the regtest node simulator, a worker pool and the intake.

The node is driven only through its JSON-RPC surface, exactly as a test would drive a real regtest
bitcoind; the same tests could run against one by pointing ``rpc_url`` at it. The customer pays from
a wallet of its own (``payer``, created on the node), so the shop's wallet (``satworks``, the one
satworks reads) sees payments as Core shows them to a merchant: receives only, none for a conflicted
transaction.
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
SHOP_WALLET, PAYER_WALLET = "satworks", "payer"
WAIT_S = 60.0  # generous for a loaded 2-core machine, bounded so a stuck request fails with an explanation


@dataclass
class PaymentStack:
    client: TestClient[Any, Any]
    settings: Settings
    node: BitcoindNode
    worker: WorkerProcess
    auth: dict[str, str]

    def __post_init__(self) -> None:
        self._proxy(PAYER_WALLET).createwallet(PAYER_WALLET)

    def _proxy(self, wallet: str) -> AuthServiceProxy:
        """A fresh RPC proxy (python-bitcoinrpc proxies are not thread-safe)."""
        return AuthServiceProxy(f"{self.node.url}/wallet/{wallet}", timeout=10)

    def restart_worker(self) -> None:
        """Kill the worker pool (as a crash would) and start a new one; queued messages wait for it."""
        self.worker.kill()
        self.worker = WorkerProcess(self.settings).start()

    def node_warming_up(self, seconds: float) -> None:
        """The node answers -28 to every call for ``seconds``, like a restarting bitcoind."""
        self.node.call_soon(self.node.sim.set_warming_up, seconds)

    async def rpc(self, method: str, *params: Any) -> Any:
        """A call to the node from the customer's wallet (chain RPCs ignore the wallet)."""
        return await asyncio.to_thread(lambda: getattr(self._proxy(PAYER_WALLET), method)(*params))

    async def shop_rpc(self, method: str, *params: Any) -> Any:
        """A call to the shop's wallet, the one satworks reads."""
        return await asyncio.to_thread(lambda: getattr(self._proxy(SHOP_WALLET), method)(*params))

    async def mine(self, blocks: int = 1) -> list[str]:
        address = await self.rpc("getnewaddress")
        hashes: list[str] = await self.rpc("generatetoaddress", blocks, address)
        return hashes

    async def fund(self) -> None:
        """Mature some coinbase so the payer can spend (regtest: 100 confirmations)."""
        await self.mine(101)

    async def bump(self, txid: str) -> str:
        """The customer replaces its payment with a higher fee (same payments, BIP125)."""
        replacement: str = (await self.rpc("bumpfee", txid))["txid"]
        return replacement

    def audit(self, payment_id: str) -> list[str]:
        """The request's status moves, in order."""
        sql = "SELECT coalesce(array_agg(to_status ORDER BY id), '{}') FROM payment_audit WHERE payment_id = %s"
        return list(scalar(self.settings, sql, payment_id))

    async def wait_for_txs(self, payment_id: str, states: dict[str, str], timeout_s: float = WAIT_S) -> None:
        """Wait until satworks stored exactly ``states`` (txid → state) for the request."""

        async def stored() -> bool:
            return self.tx_states(payment_id) == states

        try:
            await eventually(stored, timeout_s=timeout_s, what=f"payment {payment_id}'s transactions to be {states}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.explain(payment_id)}") from None

    def tx_states(self, payment_id: str) -> dict[str, str]:
        """What satworks stored for each transaction paying the request."""
        sql = "SELECT coalesce(jsonb_object_agg(txid, state), '{}') FROM payment_txs WHERE payment_id = %s"
        return dict(scalar(self.settings, sql, payment_id))

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

    async def wait_for(
        self, payment_id: str, *statuses: str, timeout_s: float = WAIT_S, **fields: Any
    ) -> dict[str, Any]:
        """Poll the request over HTTP until its status is one of ``statuses`` with ``fields``."""

        async def check() -> dict[str, Any] | None:
            document = await self.get(payment_id)
            ok = document["status"] in statuses and all(document[k] == v for k, v in fields.items())
            return document if ok else None

        try:
            return await eventually(check, timeout_s=timeout_s, what=f"payment {payment_id} to be {statuses} {fields}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.explain(payment_id)}") from None

    def explain(self, payment_id: str) -> str:
        """What satworks holds for a request, for a failure message: its row, trail and receipts."""
        sql = (
            "SELECT json_build_object('status', status, 'exception', exception_status, 'received_sat', received_sat,"
            " 'confirmations', confirmations, 'checks', checks, 'checked_at', checked_at)"
            " FROM payment_requests WHERE id = %s"
        )
        return (
            f"  request: {scalar(self.settings, sql, payment_id)}\n"
            f"  audit trail: {self.audit(payment_id)}\n"
            f"  stored txs: {self.tx_states(payment_id)}"
        )

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
