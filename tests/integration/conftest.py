"""Fixtures for the integration tests that need a whole payments stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from satworks.devnodes.bitcoind.server import BitcoindConfig
from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.bitcoind_fixtures import BitcoindNode
from tests.integration.notify_stack import notify, notify_env  # noqa: F401 - fixtures of the notification tests
from tests.integration.payments_stack import NODE_TOKEN, SHOP_WALLET, WATCHER_SECRET, PaymentStack
from tests.support import WorkerProcess, free_port


@pytest.fixture
async def stack(base_settings: Settings, make_key: Any, aiohttp_client: Any) -> AsyncIterator[PaymentStack]:
    settings = base_settings.model_copy(
        update={
            "queue_prefix": f"p{uuid.uuid4().hex[:8]}_",
            "worker_metrics_port": free_port(),
            "bitcoind_webhook_token": NODE_TOKEN,
            "payment_webhook_secret": WATCHER_SECRET,
            "payment_check_min_ms": 200,
            "payment_check_max_ms": 1_000,
        }
    )
    web_port = free_port()
    hooks = f"http://127.0.0.1:{web_port}/v1/webhooks/bitcoind"
    node = BitcoindNode(
        BitcoindConfig(
            walletnotify_url=f"{hooks}/walletnotify?txid=%s&token={NODE_TOKEN}",
            blocknotify_url=f"{hooks}/blocknotify?blockhash=%s&token={NODE_TOKEN}",
        )
    )
    settings = settings.model_copy(update={"bitcoind_rpc_url": f"{node.url}/wallet/{SHOP_WALLET}"})
    client = await aiohttp_client(TestServer(create_app(settings), port=web_port))
    stack = PaymentStack(
        client, settings, node, WorkerProcess(settings).start(), {"Authorization": f"Bearer {make_key()}"}
    )
    try:
        yield stack
    finally:
        stack.worker.kill()
        node.close()
