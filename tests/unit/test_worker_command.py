"""``satworks worker`` runs Dramatiq's CLI in its own process, so what it imports first matters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from satworks import cli


def test_the_worker_command_imports_nothing_that_reads_the_metrics_directory_before_setting_it() -> None:
    """The worker processes fork from the command: a ``prometheus_client`` imported before
    ``PROMETHEUS_MULTIPROC_DIR`` is set would keep every worker's counters in its own memory,
    and the pool's metrics endpoint would show none of them."""
    probe = (
        "import sys\n"
        "from satworks import cli\n"
        "from satworks.jobs.base import QUEUES\n"  # what _run_worker imports before setting the directory
        "cli.Settings()\n"
        "print(sorted(m for m in ('prometheus_client', 'dramatiq') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        ("worker", "--processes", "0"),
        ("worker", "--threads", "0"),
        ("worker", "--processes", "-1"),
        ("worker", "--threads", "eight"),
        ("web", "--processes", "0"),
    ],
)
def test_a_pool_without_processes_or_threads_is_refused_before_anything_starts(
    command: str, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dramatiq would start such a pool and do nothing (0 processes exit at once, 0 threads wait forever)."""
    with pytest.raises(SystemExit) as refused:
        cli.main([command, flag, value])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {value} is not a positive number" in err
    assert "Traceback" not in err


def test_a_worker_process_starts_without_the_libraries_only_some_jobs_use(tmp_path: Path) -> None:
    """gRPC and lnd's protobuf modules (lightning jobs), aiohttp (webhook deliveries) and pika (the
    RabbitMQ broker) are imported on first use: each worker process of every pool would otherwise pay
    for them at start-up (about 0.2 s in all)."""
    probe = (
        "import sys\n"
        "import satworks.workers.main\n"  # builds the broker and declares every actor; connects to nothing
        "print(sorted(m for m in ('aiohttp', 'grpc', 'google.protobuf', 'pika') if m in sys.modules))\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "SATWORKS_BROKER_KIND": "redis"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, env=env, cwd=tmp_path
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
