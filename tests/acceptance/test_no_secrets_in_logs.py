"""No secret, API key or payment address in any log line of a running stack.

The intake, a worker pool, the scheduler and the CLI run as processes at DEBUG, logging to files; the
test creates keys and secrets, uses every one of them (jobs, a requeue, failed authentications with
a forged key, a revoked key, node notifications with their token, a signed watcher event, a payment
that settles, a database URL with a password), then greps every captured line for each of them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from bitcoinrpc.authproxy import AuthServiceProxy

from satworks.devnodes.bitcoind.server import BitcoindConfig
from satworks.settings import Settings
from satworks.signatures import sign
from tests.integration.bitcoind_fixtures import BitcoindNode
from tests.scheduler_support import fresh_database
from tests.support import ROOT, free_port, settings_env, wait_until

pytestmark = pytest.mark.acceptance


class Logged:
    """A ``satworks`` command in its own process group, stdout and stderr to one file."""

    def __init__(self, settings: Settings, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "satworks.cli", *args],
                env=settings_env(settings),
                cwd=ROOT,
                start_new_session=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def cli(settings: Settings, log: Path, *args: str) -> str:
    """Run a one-shot CLI command; its stderr (logs) goes to ``log``, its stdout (the answer) is returned."""
    with log.open("ab") as err:
        done = subprocess.run(
            [sys.executable, "-m", "satworks.cli", *args],
            env=settings_env(settings),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=60,
            check=True,
        )
    return done.stdout.decode().strip()


@pytest.fixture
def configured(base_settings: Settings) -> Iterator[Settings]:
    with fresh_database(base_settings) as settings:
        yield settings


def test_no_log_line_holds_a_key_a_secret_or_a_payment_address(configured: Settings, tmp_path: Path) -> None:
    db_password = "dbpw-" + secrets.token_hex(12)  # trust authentication ignores it; it must not show anyway
    node_token = "node-" + secrets.token_hex(12)
    watcher_secret = "watch-" + secrets.token_hex(12)
    rpc_password = "rpc-" + secrets.token_hex(12)
    http_port = free_port()
    hooks = f"http://127.0.0.1:{http_port}/v1/webhooks/bitcoind"
    node = BitcoindNode(
        BitcoindConfig(
            rpc_password=rpc_password,
            walletnotify_url=f"{hooks}/walletnotify?txid=%s&token={node_token}",
            blocknotify_url=f"{hooks}/blocknotify?blockhash=%s&token={node_token}",
        )
    )
    settings = configured.model_copy(
        update={
            "database_url": configured.database_url.replace("//postgres@", f"//postgres:{db_password}@"),
            "log_level": "DEBUG",
            "http_port": http_port,
            "scheduler_metrics_port": free_port(),
            "schedule_canary": "interval:2s",
            "bitcoind_rpc_url": node.url,
            "bitcoind_webhook_token": node_token,
            "payment_webhook_secret": watcher_secret,
            "payment_check_min_ms": 200,
            "payment_check_max_ms": 1_000,
        }
    )
    assert db_password in settings.database_url
    logs = tmp_path / "logs"
    logs.mkdir()
    admin_key = cli(settings, logs / "cli.log", "apps", "create", "ops", "--admin", "--quiet")
    app_key = cli(settings, logs / "cli.log", "apps", "create", "shop", "--quiet")
    gone_key = cli(settings, logs / "cli.log", "apps", "create", "gone", "--quiet")
    cli(settings, logs / "cli.log", "apps", "revoke", "gone")
    forged_key = "sw_" + admin_key.split("_")[1] + "_" + secrets.token_urlsafe(32).replace("_", "-")

    processes = [
        Logged(settings, ["web"], logs / "web.log"),
        Logged(settings, ["worker", "--queues", "critical,default,bulk", "--processes", "1"], logs / "worker.log"),
        Logged(settings, ["scheduler"], logs / "scheduler.log"),
    ]
    http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10)
    addresses: list[str] = []
    try:
        wait_until(lambda: _answers(http), timeout_s=30, what="the intake to answer")
        app, admin = _auth(app_key), _auth(admin_key)
        addresses = _exercise(http, app, admin, node, watcher_secret)
        for key, address in ((forged_key, "10.1.1.1"), (gone_key, "10.1.1.2"), ("Bearer nonsense", "10.1.1.3")):
            headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}
            assert http.get("/v1/jobs", headers=headers).status_code == 401
        assert http.get("/v1/audit", headers=admin).status_code == 200
        wait_until(lambda: _scheduled_canaries(http, admin) >= 2, timeout_s=30, what="two scheduled canaries")
    finally:
        http.close()
        for process in processes:
            process.stop()
        node.close()

    secrets_used = {
        "admin key": admin_key,
        "admin key secret": admin_key.split("_")[2],
        "app key": app_key,
        "app key secret": app_key.split("_")[2],
        "revoked key secret": gone_key.split("_")[2],
        "forged key secret": forged_key.split("_")[2],
        "node token": node_token,
        "watcher secret": watcher_secret,
        "database password": db_password,
        "node RPC password": rpc_password,
        **{f"payment address {i}": a for i, a in enumerate(addresses)},
    }
    lines = [(path.name, line) for path in sorted(logs.iterdir()) for line in path.read_text().splitlines()]
    assert len(lines) > 100, "too few log lines to prove anything: is DEBUG logging on?"
    assert any(name == "web.log" and '"action": "dead_letters_requeued"' in line for name, line in lines)
    assert any(name == "worker.log" and '"action": "payment_checked"' in line for name, line in lines)
    leaks = [
        f"{what} in {name}: {line[:300]}"
        for what, value in secrets_used.items()
        for name, line in lines
        if value in line
    ]
    assert leaks == []


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def _job_status(http: httpx.Client, auth: dict[str, str], job_id: str) -> str:
    return str(http.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"])


def _exercise(
    http: httpx.Client, app: dict[str, str], admin: dict[str, str], node: BitcoindNode, watcher_secret: str
) -> list[str]:
    """Jobs of every outcome, a requeue, a payment paid and settled; returns the payment addresses."""
    ok = http.post("/v1/jobs", json={"type": "canary"}, headers=app).json()
    dies = http.post(
        "/v1/jobs",
        json={"type": "canary", "payload": {"fail": "transient", "fail_attempts": 1}, "max_retries": 0},
        headers=app,
    ).json()
    wait_until(lambda: _job_status(http, app, dies["id"]) == "dead", what="the job to die")
    assert http.post("/v1/dead-letters/requeue", json={"app": "shop"}, headers=admin).json()["matched"] == 1
    assert http.post(f"/v1/dead-letters/{dies['id']}/requeue", headers=admin).status_code == 202
    for job in (ok, dies):
        wait_until(lambda job=job: _job_status(http, app, job["id"]) == "succeeded", what="jobs to succeed")

    payer = AuthServiceProxy(node.url, timeout=10)
    payer.generatetoaddress(101, payer.getnewaddress())
    payment = http.post("/v1/payments", json={"method": "onchain", "amount_sat": 25_000}, headers=app).json()

    def address() -> str | None:
        return http.get(f"/v1/payments/{payment['id']}", headers=app).json()["address"]  # type: ignore[no-any-return]

    paid_to = wait_until(address, what="the payment's address")
    payer.sendtoaddress(paid_to, Decimal("0.00025"))
    event = {"id": f"evt-{time.time_ns()}", "event": "payment.seen", "data": {"payment_id": payment["id"]}}
    raw = json.dumps(event).encode()
    headers = {"X-Satworks-Signature": sign(raw, watcher_secret, int(time.time())), "Content-Type": "application/json"}
    assert http.post("/v1/webhooks/payments", content=raw, headers=headers).status_code == 202
    payer.generatetoaddress(1, payer.getnewaddress())

    def settled() -> bool:
        return http.get(f"/v1/payments/{payment['id']}", headers=app).json()["status"] == "settled"  # type: ignore[no-any-return]

    wait_until(settled, timeout_s=30, what="the payment to settle")
    return [paid_to]


def _scheduled_canaries(http: httpx.Client, admin: dict[str, str]) -> int:
    stats: dict[str, Any] = http.get("/v1/stats", headers=admin).json()
    return int(stats["jobs_by_type"].get("canary", {}).get("succeeded", 0))
