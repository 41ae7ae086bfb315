"""A running stack to scrape: ``satworks web`` and a worker pool as processes, the regtest node simulator.

It runs a fixed set of jobs, one of every outcome, and one payment request, so every series the
dashboard and the alerts use exists, with values the tests know (``RAN``).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.db.migrate import ensure_database, upgrade
from satworks.devnodes.bitcoind.server import BitcoindConfig
from satworks.settings import Settings
from tests.integration.bitcoind_fixtures import BitcoindNode
from tests.support import ROOT, WorkerProcess, free_port, settings_env, wait_until

# (request body, the status it ends in): priority high/normal/low → queue critical/default/bulk.
JOBS: list[tuple[dict[str, Any], str]] = [
    *[({"type": "canary", "priority": "normal"}, "succeeded")] * 3,
    ({"type": "canary", "priority": "normal", "payload": {"fail": "transient", "fail_attempts": 1}}, "succeeded"),
    ({"type": "canary", "priority": "low", "payload": {"fail": "permanent"}}, "failed"),
    ({"type": "canary", "priority": "high", "payload": {"fail": "transient"}, "max_retries": 0}, "dead"),
    ({"type": "canary", "priority": "normal", "delay_seconds": 3600}, "scheduled"),
]


# What the metrics must count for JOBS (canary only), by queue. The transient failure runs twice, the
# scheduled job not at all.
ENQUEUED = {"critical": 1, "default": 5, "bulk": 1}
STARTED = {"critical": 1, "default": 5, "bulk": 1}
SUCCEEDED = {"default": 4}
RETRIED = {"default": 1}
FAILED = {"bulk": 1}
DEAD = {"critical": 1}


class MonitoredStack:
    def __init__(self, base: Settings, logs: Path) -> None:
        self.node = BitcoindNode(BitcoindConfig())
        # Its own database: the intake's gauges count whole tables (payment requests by status), which
        # the other tests of this process fill too. Its queues under the test process's prefix, so the
        # session's teardown purges them.
        url = make_url(base.database_url)
        self.settings = base.model_copy(
            update={
                "database_url": url.set(database=f"{url.database}_mon").render_as_string(hide_password=False),
                "queue_prefix": f"{base.queue_prefix}mon_",
                "http_port": free_port(),
                "worker_metrics_port": free_port(),
                "bitcoind_rpc_url": self.node.url,
            }
        )
        self.web_url = f"http://127.0.0.1:{self.settings.http_port}"
        self.worker_url = f"http://127.0.0.1:{self.settings.worker_metrics_port}"
        self.web_log = logs / "web.log"
        self.web: subprocess.Popen[bytes] | None = None
        self.worker = WorkerProcess(self.settings)
        self.http = httpx.Client(base_url=self.web_url, timeout=10)
        _drop_database(self.settings.database_url)
        ensure_database(self.settings.database_url)
        upgrade(self.settings.database_url)
        engine = sync_engine(self.settings.database_url, pool_size=1)
        with engine.begin() as conn:
            key = apps.create(conn, f"monitoring-{uuid.uuid4().hex[:8]}", admin=False, rate_limit_per_minute=None)
        engine.dispose()
        self.auth = {"Authorization": f"Bearer {key}"}

    def start(self) -> MonitoredStack:
        with self.web_log.open("wb") as log:
            self.web = subprocess.Popen(
                [sys.executable, "-m", "satworks.cli", "web"],
                env=settings_env(self.settings),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.worker.start()
        wait_until(self._answers, timeout_s=30, what=f"the intake to answer /health (log: {self.web_log})")
        return self

    def _answers(self) -> bool:
        assert self.web is not None
        if self.web.poll() is not None:
            raise AssertionError(f"satworks web exited: {self.web_log.read_text()[-2000:]}")
        try:
            return self.http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def run_jobs(self) -> None:
        """Submit ``JOBS`` and one payment request; wait until each reached its final state."""
        ids = []
        for body, status in JOBS:
            response = self.http.post("/v1/jobs", json=body, headers=self.auth)
            assert response.status_code == 202, response.text
            ids.append((response.json()["id"], status))
        payment = self.http.post("/v1/payments", json={"method": "onchain", "amount_sat": 10_000}, headers=self.auth)
        assert payment.status_code == 202, payment.text
        for job_id, status in ids:
            wait_until(
                lambda job_id=job_id, status=status: self._job_status(job_id) == status, what=f"{job_id} {status}"
            )
        payment_id = payment.json()["id"]
        wait_until(lambda: self._payment_status(payment_id) == "new", what=f"payment {payment_id} to get its address")

    def _job_status(self, job_id: str) -> str:
        return str(self.http.get(f"/v1/jobs/{job_id}", headers=self.auth).json()["status"])

    def _payment_status(self, payment_id: str) -> str:
        return str(self.http.get(f"/v1/payments/{payment_id}", headers=self.auth).json()["status"])

    def scrape_web(self) -> str:
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text

    def scrape_worker(self) -> str:
        """The pool's metrics, once its metrics process answers (it is forked after the workers boot)."""

        def scrape() -> str | None:
            try:
                response = httpx.get(f"{self.worker_url}/metrics", timeout=5)
            except httpx.TransportError:
                return None
            return response.text if response.status_code == 200 else None

        return wait_until(scrape, what=f"the worker pool's metrics on {self.worker_url}")

    def stop(self) -> None:
        self.http.close()
        self.worker.kill()  # a throwaway pool: no need to wait for Dramatiq's graceful shutdown
        if self.web is not None and self.web.poll() is None:
            self.web.terminate()
            try:
                self.web.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.web.kill()
                self.web.wait(timeout=5)
        self.node.close()
        _drop_database(self.settings.database_url)


def _drop_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        name = sql.Identifier(str(target.database))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
