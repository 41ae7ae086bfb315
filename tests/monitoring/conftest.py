"""Fixtures of the monitoring tests: promtool and the Prometheus server (Debian's ``prometheus``
package; ``./scripts/test`` installs it), and one running stack per test process to scrape.

Without the binaries these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from satworks.settings import Settings
from tests.monitoring.stack import MonitoredStack

CI = os.environ.get("CI") == "true"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus; ./scripts/test installs it)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus")


@pytest.fixture(scope="session")
def stack(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredStack]:
    """The intake and a worker pool after ``stack.JOBS`` and one payment ran; shared, so tests only read it."""
    running = MonitoredStack(base_settings, tmp_path_factory.mktemp("stack")).start()
    try:
        running.run_jobs()
        yield running
    finally:
        running.stop()
