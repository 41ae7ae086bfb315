"""``satworks worker`` runs Dramatiq's CLI in its own process, so what it imports first matters."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_command_imports_nothing_that_reads_the_metrics_directory_before_setting_it() -> None:
    """The worker processes fork from the command: a ``prometheus_client`` imported before
    ``PROMETHEUS_MULTIPROC_DIR`` is set would keep every worker's counters in its own memory,
    and the pool's metrics endpoint would show none of them."""
    probe = (
        "import sys\n"
        "from satworks import cli\n"
        "from satworks.jobs.base import QUEUES\n"  # what _exec_worker imports before setting the directory
        "cli.Settings()\n"
        "print(sorted(m for m in ('prometheus_client', 'dramatiq') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
