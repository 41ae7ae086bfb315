"""``satworks web --processes 2``: two serving processes on one port, one set of metrics."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from satworks.settings import Settings
from tests.support import ROOT, free_port, live_children, scalar, settings_env, wait_until

REQUESTS = 40


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its new parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` with these labels (in any order) in ``/metrics`` text."""
    values = [
        float(value)
        for sample, label_text, value in re.findall(r"^(\w+)(?:\{(.*)\})? (\S+)$", text, re.MULTILINE)
        if sample == name and all(f'{k}="{v}"' in label_text.split(",") for k, v in labels.items())
    ]
    assert len(values) == 1, f"{name} {labels}: {values}"
    return values[0]


@pytest.fixture
def web(settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "satworks.cli", "web", "--processes", "2"],
        env=settings_env(settings.model_copy(update={"http_port": port})),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        yield proc, base
    finally:
        with contextlib.suppress(ProcessLookupError):  # the whole group: children outlive a killed parent
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_two_processes_share_the_port_count_requests_together_and_stop_on_sigterm(
    web: tuple[subprocess.Popen[bytes], str], key: str, settings: Settings
) -> None:
    proc, base = web
    serving = wait_until(
        lambda: len(live_children(proc.pid)) == 2 and live_children(proc.pid), what="two web processes"
    )
    wait_until(lambda: _healthy(base), what="the port answering")

    accepted = []
    for _ in range(REQUESTS):  # one connection each: the kernel spreads connections, not requests
        with httpx.Client(base_url=base, timeout=10) as client:
            response = client.post(
                "/v1/jobs", json={"type": "canary", "payload": {}}, headers={"Authorization": f"Bearer {key}"}
            )
        assert response.status_code == 202, response.text
        accepted.append(response.json()["id"])

    assert live_children(proc.pid) == serving  # neither was replaced
    for _ in range(4):  # whichever process answers reports both
        text = httpx.get(f"{base}/metrics", timeout=10).text
        assert metric(text, "satworks_http_processes") == 2
        assert metric(text, "satworks_http_requests_total", route="/v1/jobs", status="202") == REQUESTS
    assert scalar(settings, "SELECT count(*) FROM jobs WHERE id = ANY(%s::uuid[])", accepted) == REQUESTS

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert not [pid for pid in serving if Path(f"/proc/{pid}").exists()]  # stopped and reaped by the parent


def test_the_serving_processes_stop_when_their_parent_is_killed(web: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, base = web
    serving = wait_until(
        lambda: len(live_children(proc.pid)) == 2 and live_children(proc.pid), what="two web processes"
    )
    wait_until(lambda: _healthy(base), what="the port answering")

    proc.kill()  # the parent only: SIGKILL leaves it no time to stop its children
    proc.wait(timeout=10)

    wait_until(lambda: not [pid for pid in serving if alive(pid)], what="the orphaned web processes stopping")
    assert not _healthy(base)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
