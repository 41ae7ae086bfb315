"""A whole draws stack per test: the regtest node simulator, a worker pool and the intake over HTTP.

The node is driven through its JSON-RPC surface only, as a test would drive a real regtest bitcoind;
its ``blocknotify`` calls the intake's webhook, which wakes the draw jobs up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from bitcoinrpc.authproxy import AuthServiceProxy

from satworks.devnodes.bitcoind.server import BitcoindConfig
from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.bitcoind_fixtures import BitcoindNode
from tests.support import WorkerProcess, eventually, free_port, scalar

NODE_TOKEN = "node-token-0123456789abcdef"


def entries(n: int, *, prefix: str = "entry", emails: bool = False) -> list[dict[str, Any]]:
    """``n`` entries holding 1..7 tickets each (deterministic), optionally with emails."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        entry: dict[str, Any] = {"id": f"{prefix}-{i:05d}", "tickets": 1 + (i * 5) % 7}
        if emails:
            entry["email"] = f"player{i}@example.com"
        out.append(entry)
    return out


@dataclass
class DrawStack:
    client: TestClient[Any, Any]
    settings: Settings
    node: BitcoindNode
    worker: WorkerProcess | None
    auth: dict[str, str]

    def payer(self) -> AuthServiceProxy:
        return AuthServiceProxy(self.node.url, timeout=10)

    async def rpc(self, method: str, *params: Any) -> Any:
        return await asyncio.to_thread(lambda: getattr(self.payer(), method)(*params))

    async def mine(self, blocks: int = 1) -> list[str]:
        address = await self.rpc("getnewaddress")
        hashes: list[str] = await self.rpc("generatetoaddress", blocks, address)
        return hashes

    async def tip(self) -> int:
        return int(await self.rpc("getblockcount"))

    async def block_hash(self, height: int) -> str:
        return str(await self.rpc("getblockhash", height))

    async def notify_block(self, best: str | None = None) -> None:
        """What ``bitcoind -blocknotify`` does: tell the intake a block arrived (default: the node's best)."""
        best = best or await self.rpc("getbestblockhash")
        response = await self.client.post(
            f"/v1/webhooks/bitcoind/blocknotify?blockhash={best}", headers={"X-Satworks-Node-Token": NODE_TOKEN}
        )
        assert response.status == 202, await response.text()

    async def post(self, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> Any:
        return await self.client.post("/v1/draws", json=body, headers={**self.auth, **(headers or {})})

    async def commit(self, **body: Any) -> dict[str, Any]:
        response = await self.post(body)
        assert response.status == 202, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def get(self, draw_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/draws/{draw_id}", headers=self.auth)
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def wait_for(self, draw_id: str, *statuses: str, timeout_s: float = 30, **fields: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            document = await self.get(draw_id)
            ok = document["status"] in statuses and all(document["beacon"].get(k) == v for k, v in fields.items())
            return document if ok else None

        return await eventually(check, timeout_s=timeout_s, what=f"draw {draw_id} to be {statuses} {fields}")

    def audit(self, draw_id: str) -> list[tuple[str | None, str, str | None]]:
        rows = scalar(
            self.settings,
            "SELECT coalesce(json_agg(json_build_array(from_status, to_status, block_hash) ORDER BY id), '[]')"
            " FROM draw_audit WHERE draw_id = %s",
            draw_id,
        )
        return [tuple(row) for row in rows]

    def events(self, draw_id: str) -> list[dict[str, Any]]:
        return list(
            scalar(
                self.settings,
                "SELECT coalesce(json_agg(json_build_object('type', type, 'data', data) ORDER BY id), '[]')"
                " FROM app_events WHERE subject_id = %s",
                draw_id,
            )
        )


@asynccontextmanager
async def running_draw_stack(
    base_settings: Settings,
    make_key: Any,
    aiohttp_client: Any,
    *,
    blocknotify: bool = True,
    worker: bool = True,
    **overrides: Any,
) -> AsyncIterator[DrawStack]:
    """The stack; ``blocknotify=False``: the node notifies nobody (tests play the node's part)."""
    settings = base_settings.model_copy(
        update={
            "queue_prefix": f"d{uuid.uuid4().hex[:8]}_",
            "worker_metrics_port": free_port(),
            "bitcoind_webhook_token": NODE_TOKEN,
            **overrides,
        }
    )
    web_port = free_port()
    hook = f"http://127.0.0.1:{web_port}/v1/webhooks/bitcoind/blocknotify?blockhash=%s&token={NODE_TOKEN}"
    node = BitcoindNode(BitcoindConfig(blocknotify_url=hook if blocknotify else None))
    settings = settings.model_copy(update={"bitcoind_rpc_url": node.url})
    client = await aiohttp_client(TestServer(create_app(settings), port=web_port))
    process = WorkerProcess(settings).start() if worker else None
    stack = DrawStack(client, settings, node, process, {"Authorization": f"Bearer {make_key()}"})
    try:
        await stack.mine(3)
        yield stack
    finally:
        if process is not None:
            process.kill()
        node.close()
