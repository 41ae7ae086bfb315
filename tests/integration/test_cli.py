"""The operator's command line against the real database and broker."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.support import ROOT, job_row, settings_env


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


def test_the_operator_runs_a_scheduled_task_now_with_a_platform_job_type(settings: Any) -> None:
    """The runbooks' `satworks enqueue lightning_sweep` / `draws.due`: types apps cannot submit."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name).returncode == 0
    for job_type in ("lightning_sweep", "draws.due"):
        enqueued = satworks(settings, "enqueue", job_type, "--app", name)
        assert enqueued.returncode == 0, enqueued.stderr
        job_id = json.loads(enqueued.stdout)["id"]
        row = job_row(settings, job_id)
        assert row is not None and (row["type"], row["queue"]) == (job_type, f"{settings.queue_prefix}critical")
    unknown = satworks(settings, "enqueue", "no_such_type", "--app", name)
    assert (unknown.returncode, "unknown job type 'no_such_type'" in unknown.stderr) == (1, True), unknown.stderr
    assert "draws.due" in unknown.stderr  # the operator is told the platform's types too


def test_a_pool_whose_metrics_port_is_taken_refuses_to_start_and_spares_the_other_pools_metrics(
    settings: Any,
) -> None:
    with socket.socket() as holder:  # the port another pool serves its metrics on
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        their_metrics = Path(tempfile.gettempdir()) / f"satworks-metrics-{port}"
        their_metrics.mkdir(exist_ok=True)
        (their_metrics / "counter_1.db").write_bytes(b"theirs")
        try:
            second = subprocess.run(
                [sys.executable, "-m", "satworks.cli", "worker", "--queues", "default"],
                env={**settings_env(settings), "SATWORKS_WORKER_METRICS_PORT": str(port)},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 2, second.stderr
            assert f"SATWORKS_WORKER_METRICS_PORT {port} on 127.0.0.1 is in use" in second.stderr
            assert (their_metrics / "counter_1.db").read_bytes() == b"theirs"
        finally:
            shutil.rmtree(their_metrics, ignore_errors=True)


def test_errors_are_one_clear_line_without_a_traceback(settings: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name).returncode == 0
    again = satworks(settings, "apps", "create", name)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == f"error: an active app named {name!r} already exists"
    assert "Traceback" not in again.stderr
    unknown = satworks(settings, "enqueue", "canary", "--app", "no-such-app")
    assert (unknown.returncode, "Traceback" in unknown.stderr) == (1, False)


def test_bad_payloads_name_the_problem_without_a_traceback(settings: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name).returncode == 0
    malformed = satworks(settings, "enqueue", "canary", "--payload", "{bad", "--app", name)
    assert malformed.returncode == 2
    assert malformed.stderr.startswith("error: --payload: malformed JSON"), malformed.stderr
    invalid = satworks(settings, "enqueue", "canary", "--payload", '{"sleep_ms": "long"}', "--app", name)
    assert invalid.returncode == 1
    assert "payload.sleep_ms" in invalid.stderr, invalid.stderr
    assert "Traceback" not in malformed.stderr + invalid.stderr


def test_bare_command_and_version_and_help_say_what_to_do(settings: Any) -> None:
    bare = satworks(settings)
    assert (bare.returncode, "enqueue" in bare.stdout, "Traceback" in bare.stderr) == (2, True, False)
    assert satworks(settings, "--version").stdout.startswith("satworks ")
    helped = satworks(settings, "apps", "--help").stdout
    assert "list every app" in helped and "revoke the active app" in helped


def test_a_revoked_apps_name_can_be_given_to_a_new_app(settings: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert satworks(settings, "apps", "create", name).returncode == 0
    assert satworks(settings, "apps", "revoke", name).returncode == 0
    again = satworks(settings, "apps", "create", name, "--quiet")
    assert again.returncode == 0, again.stderr
    states = [
        line.split("\t")[2]
        for line in satworks(settings, "apps", "list").stdout.splitlines()
        if line.startswith(name + "\t")
    ]
    assert sorted(states) == ["active", "revoked"]
    assert satworks(settings, "apps", "create", name).returncode == 1  # one active app per name
