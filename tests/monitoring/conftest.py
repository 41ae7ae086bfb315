"""Fixtures of the monitoring tests: promtool and the Prometheus server (Debian's ``prometheus``
package; ``./scripts/test`` installs it).

Without the binaries these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil

import pytest


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
