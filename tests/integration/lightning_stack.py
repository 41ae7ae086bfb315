"""A whole Lightning stack per test: simulated lnd nodes, the intake over HTTP, a worker pool and
``satworks lnd-listener`` as real processes.

The nodes run in this process (``lnd_fixtures.LndNetwork``) and are reached by the worker and the
listener over their real gRPC surface (TLS, macaroons), as a real lnd would be. Payments are made as
a customer would: ``SendPaymentV2`` on the payer node with the request's BOLT11 string.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bolt11
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from satworks.http.app import create_app
from satworks.integrations.lnd.records import LndPayment
from satworks.settings import Settings
from tests.integration.lnd_fixtures import LndNetwork
from tests.support import ROOT, WorkerProcess, eventually, free_port, scalar, settings_env

SLOW_CHECKS = {"payment_check_min_ms": 600_000, "payment_check_max_ms": 600_000}  # no scheduled check within a test
FAST_CHECKS = {"payment_check_min_ms": 200, "payment_check_max_ms": 1_000}


class ListenerProcess:
    """``satworks lnd-listener`` in its own process group; its JSON log goes to ``log_path``."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ListenerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "satworks.cli", "lnd-listener"],
                env=settings_env(self.settings),
                cwd=ROOT,
                start_new_session=True,
                stdout=log,
                stderr=log,
            )
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc is not None else None

    def metrics(self) -> dict[str, float]:
        return scrape(self.settings.lnd_listener_metrics_port)


def scrape(port: int) -> dict[str, float]:
    """``{"name{label=value,...}": value}`` from a metrics port; empty while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


@dataclass
class LightningStack:
    client: TestClient[Any, Any]
    settings: Settings
    lnd: LndNetwork
    auth: dict[str, str]
    log_dir: Path
    worker: WorkerProcess | None = None
    listener: ListenerProcess | None = None
    _stopped: list[Any] = field(default_factory=list)

    # ---- processes

    def start_worker(self, **changes: Any) -> WorkerProcess:
        # A port of its own: a worker killed a moment ago may still hold the previous one.
        changes = {"worker_metrics_port": free_port(), **changes}
        log = self.log_dir / f"worker-{changes['worker_metrics_port']}.log"  # read when a test fails
        self.worker = WorkerProcess(self.settings.model_copy(update=changes), log=log).start()
        return self.worker

    def start_listener(self, **changes: Any) -> ListenerProcess:
        settings = self.settings.model_copy(update=changes)
        self.listener = ListenerProcess(settings, self.log_dir / "listener.log").start()
        return self.listener

    def worker_metrics(self) -> dict[str, float]:
        assert self.worker is not None
        return scrape(self.worker.settings.worker_metrics_port)

    def close(self) -> None:
        for process in (self.listener, self.worker):
            if process is not None:
                process.kill()

    # ---- the API

    async def create(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/v1/payments", json={"method": "lightning", **body}, headers=self.auth)
        assert response.status == 202, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def get(self, payment_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/payments/{payment_id}", headers=self.auth)
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def wait_for(self, payment_id: str, *statuses: str, timeout_s: float = 30, **fields: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            document = await self.get(payment_id)
            ok = document["status"] in statuses and all(document[k] == v for k, v in fields.items())
            return document if ok else None

        return await eventually(check, timeout_s=timeout_s, what=f"payment {payment_id} to be {statuses} {fields}")

    async def created(self, **body: Any) -> dict[str, Any]:
        """Create a request and wait until lnd has made its invoice."""
        payment = await self.create(**body)
        return await self.wait_for(payment["id"], "new")

    # ---- the payer

    async def pay(self, payment_request: str, *, node: str = "payer") -> LndPayment:
        """Pay as a customer's wallet does: SendPaymentV2 with the BOLT11 string, until final."""
        payer = self.lnd.client(node)
        return await asyncio.to_thread(payer.pay, payment_request)

    async def pay_amount(self, payment_request: str, amt_msat: int, *, node: str = "payer") -> LndPayment:
        """Pay the invoice's hash and payment secret with ``amt_msat`` of our choosing (lnd lets a payer
        send more than asked, as with keysend-style payments that carry the invoice's details)."""
        decoded = bolt11.decode(payment_request)
        payer = self.lnd.client(node)

        def send() -> LndPayment:
            with payer.send_payment_v2(
                dest=decoded.payee,
                amt_msat=amt_msat,
                payment_hash=decoded.payment_hash,
                payment_addr=decoded.payment_secret,
                timeout_s=30,
            ) as updates:
                return list(updates)[-1]

        return await asyncio.to_thread(send)

    # ---- the record

    def events(self, payment_id: str) -> list[str]:
        sql = "SELECT coalesce(array_agg(type ORDER BY id), '{}') FROM app_events WHERE subject_id = %s"
        return list(scalar(self.settings, sql, payment_id))

    def audit(self, payment_id: str) -> list[str]:
        sql = "SELECT coalesce(array_agg(to_status ORDER BY id), '{}') FROM payment_audit WHERE payment_id = %s"
        return list(scalar(self.settings, sql, payment_id))


MakeStack = Callable[..., Awaitable[LightningStack]]


async def until(check: Callable[[], object], *, timeout_s: float = 20, what: str) -> None:
    """``eventually`` for a synchronous condition (a scrape, a query), without blocking the event loop."""

    async def checked() -> bool:
        return bool(await asyncio.to_thread(check))

    await eventually(checked, timeout_s=timeout_s, what=what)


@pytest.fixture
async def lightning(
    base_settings: Settings, make_key: Any, aiohttp_client: Any, lnd_network: LndNetwork, tmp_path: Path
) -> AsyncIterator[MakeStack]:
    """``await lightning(listener=True, worker=True, **settings)``: the stack, cleaned up after the test.
    Scheduled checks are off unless ``FAST_CHECKS`` (or other check settings) are passed."""
    made: list[LightningStack] = []

    async def make(*, listener: bool = True, worker: bool = True, **changes: Any) -> LightningStack:
        merchant = lnd_network.node("merchant")
        settings = base_settings.model_copy(
            update={
                "queue_prefix": f"l{uuid.uuid4().hex[:8]}_",
                "worker_metrics_port": free_port(),
                "lnd_grpc_host": lnd_network.target("merchant"),
                "lnd_tls_cert_path": str(merchant.files.tls_cert),
                "lnd_macaroon_path": str(merchant.files.macaroon),
                "lnd_rpc_timeout_s": 5.0,
                "lnd_reconnect_max_s": 2.0,
                "lnd_listener_metrics_port": free_port(),
                **SLOW_CHECKS,
                **changes,
            }
        )
        client = await aiohttp_client(TestServer(create_app(settings)))
        stack = LightningStack(client, settings, lnd_network, {"Authorization": f"Bearer {make_key()}"}, tmp_path)
        made.append(stack)
        if worker:
            stack.start_worker()
        if listener:  # subscribed before the test pays: a first subscription replays nothing
            running = stack.start_listener()
            subscribed = "satworks_lnd_stream_up"
            await until(lambda: running.metrics().get(subscribed) == 1.0, what="the listener to subscribe")
        return stack

    yield make
    for stack in made:
        stack.close()
