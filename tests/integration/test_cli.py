"""The operator's command line against the real database and broker."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from tests.support import ROOT, settings_env


def satworks(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "satworks.cli", *args],
        env=settings_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_apps_are_created_listed_used_and_revoked(settings: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = satworks(settings, "apps", "create", name, "--quiet")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sw_") and len(key) > 40
    assert name in satworks(settings, "apps", "list").stdout
    enqueued = satworks(settings, "enqueue", "canary", "--payload", '{"note": "ops"}', "--app", name)
    assert enqueued.returncode == 0, enqueued.stderr
    assert json.loads(enqueued.stdout)["status"] == "queued"
    assert satworks(settings, "apps", "revoke", name).returncode == 0
    listed = [line for line in satworks(settings, "apps", "list").stdout.splitlines() if line.startswith(name)]
    assert listed and "revoked" in listed[0]


def test_errors_are_one_clear_line_without_a_traceback(settings: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name).returncode == 0
    again = satworks(settings, "apps", "create", name)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == f"error: an app named {name!r} already exists"
    assert "Traceback" not in again.stderr
    unknown = satworks(settings, "enqueue", "canary", "--app", "no-such-app")
    assert (unknown.returncode, "Traceback" in unknown.stderr) == (1, False)
