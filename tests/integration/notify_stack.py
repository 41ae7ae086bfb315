"""The notifications stack for integration tests: its own database, a worker process, a real HTTP
receiver on 127.0.0.1 and the aiosmtpd sink.

The stack has a database of its own because every worker process listens for app events on its
database and dispatches them to *its* queue prefix: the session's shared worker must not take them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from psycopg import sql
from pydantic import SecretStr

from satworks.db.migrate import upgrade
from satworks.devnodes.smtp.sink import DEFAULT_REPLIES, Reply, SinkConfig
from satworks.settings import Settings
from satworks.webhooks.secrets import new_key
from tests.integration.smtp_fixtures import SinkThread
from tests.support import WorkerProcess, eventually, free_port

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SMTP_CAP = 2


@dataclass
class Hit:
    """One POST the receiver saw."""

    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers POSTs to a path with the answers queued for it (then 200), and keeps every hit.

    An answer is a status code, ``(status, headers)``, or ``("hang", seconds)`` to answer late."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *answers: Any) -> None:
        self.script.setdefault(path, []).extend(answers)

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hits.append(Hit(time.monotonic(), request.path, dict(request.headers), body))
        queued = self.script.get(request.path) or []
        answer = queued.pop(0) if queued else 200
        if isinstance(answer, tuple) and answer[0] == "hang":
            await asyncio.sleep(answer[1])
            return web.Response(text="late")
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        if 300 <= status < 400:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, text=f"answer {status}", headers=headers)


@dataclass
class NotifyEnv:
    settings: Settings
    worker: WorkerProcess
    sink: SinkThread
    replies: dict[str, Reply]

    def restart_worker(self) -> None:
        self.worker.kill()
        self.worker = WorkerProcess(self.settings, threads=8).start()


@pytest.fixture(scope="module")
def notify_env(base_settings: Settings) -> Iterator[NotifyEnv]:
    db_name = f"satworks_test_notify_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    replies: dict[str, Reply] = dict(DEFAULT_REPLIES)
    sink = SinkThread(SinkConfig(replies=replies, delay_s=0.1))
    server = base_settings.database_url.rsplit("/", 1)[0]
    settings = base_settings.model_copy(
        update={
            "database_url": f"{server}/{db_name}",
            "queue_prefix": f"n{uuid.uuid4().hex[:8]}_",
            "worker_metrics_port": free_port(),
            "webhook_secret_key": SecretStr(new_key()),
            "webhook_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")],
            "webhook_timeout_s": 2.0,
            "webhook_connect_timeout_s": 1.0,
            "webhook_retry_min_ms": 300,
            "webhook_retry_max_ms": 3_000,
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_helo_name": "tests.local",
            "smtp_max_sessions": SMTP_CAP,
            "email_retry_min_ms": 300,
            "email_retry_max_ms": 1_000,
        }
    )
    upgrade(settings.database_url)
    env = NotifyEnv(settings, WorkerProcess(settings, threads=8).start(), sink, replies)
    try:
        yield env
    finally:
        env.worker.kill()
        sink.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))


@dataclass
class NotifyStack:
    env: NotifyEnv
    client: TestClient[Any, Any]
    receiver: Receiver
    auth: dict[str, str]

    @property
    def settings(self) -> Settings:
        return self.env.settings

    async def register(self, path: str, events: list[str], **extra: Any) -> dict[str, Any]:
        body = {"url": self.receiver.url(path), "events": events, **extra}
        response = await self.client.post("/v1/webhook-endpoints", json=body, headers=self.auth)
        assert response.status == 201, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def job(self, **payload: Any) -> str:
        body = {"type": "canary", "payload": payload}
        response = await self.client.post("/v1/jobs", json=body, headers=self.auth)
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, headers=self.auth, params=params)
        assert response.status == 200, await response.text()
        return await response.json()

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        document = await self.get("/v1/webhook-deliveries", **params)
        items: list[dict[str, Any]] = document["items"]
        return items

    async def delivery_when(
        self, check: Callable[[dict[str, Any]], bool], *, timeout_s: float = 30, what: str = ""
    ) -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            return next((d for d in await self.deliveries() if check(d)), None)

        return await eventually(find, timeout_s=timeout_s, what=what or "a delivery")

    async def hits(self, path: str, count: int, *, timeout_s: float = 30) -> list[Hit]:
        async def enough() -> list[Hit] | None:
            found = self.receiver.at(path)
            return found if len(found) >= count else None

        return await eventually(enough, timeout_s=timeout_s, what=f"{count} POSTs to {path}")


def make_key_for(settings: Settings) -> str:
    from satworks.db import apps
    from satworks.db.engine import sync_engine

    engine = sync_engine(settings.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            return apps.create(conn, f"app-{uuid.uuid4().hex[:12]}", admin=False, rate_limit_per_minute=None)
    finally:
        engine.dispose()


@pytest.fixture
async def notify(notify_env: NotifyEnv, aiohttp_client: Any) -> AsyncIterator[NotifyStack]:
    from satworks.http.app import create_app

    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    receiver.port = server.port or 0
    client = await aiohttp_client(create_app(notify_env.settings))
    forwarded = f"10.{uuid.uuid4().int % 250}.0.1"
    auth = {"Authorization": f"Bearer {make_key_for(notify_env.settings)}", "X-Forwarded-For": forwarded}
    try:
        yield NotifyStack(notify_env, client, receiver, auth)
    finally:
        await server.close()
