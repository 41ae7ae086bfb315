"""A throwaway Prometheus server: Debian's binary, a generated config, free port, temporary storage."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.support import ROOT, free_port, wait_until

T = TypeVar("T")
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


class PrometheusServer:
    """Scrapes ``targets`` (job name → host:port list) every second and evaluates ``alerts.yml``."""

    def __init__(self, binary: str, targets: dict[str, list[str]]) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="satworks-prometheus-"))
        self.url = f"http://127.0.0.1:{free_port()}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]} for job, hosts in targets.items()
            ],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        with (self.dir / "prometheus.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until(self._ready, timeout_s=30, what=f"Prometheus to be ready on {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait(self, check: Callable[[], T | None], *, what: str) -> T:
        """``wait_until`` (30 s) with the server's log in the failure message."""
        try:
            return wait_until(check, timeout_s=30, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nprometheus log:\n{self.log()}") from None

    def log(self) -> str:
        return (self.dir / "prometheus.log").read_text()[-3000:]

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant vector as {sorted labels (without __name__): value}."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return {
            tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__")): float(item["value"][1])
            for item in data["result"]
        }

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
