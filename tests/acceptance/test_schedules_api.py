"""``GET /v1/schedules`` shows what a running scheduler and worker did: last run, last success, next run, leader."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.http.app import create_app
from satworks.settings import Settings
from tests.scheduler_support import SchedulerProcess, fresh_database
from tests.support import WorkerProcess, eventually

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(180)]


async def test_schedules_show_last_and_next_runs_to_admin_keys_only(
    base_settings: Settings, aiohttp_client: Any, tmp_path: Path
) -> None:
    with fresh_database(base_settings, schedule_canary="interval:1") as settings:
        engine = sync_engine(settings.database_url, pool_size=1)
        with engine.begin() as conn:
            admin = apps.create(conn, f"ops-{uuid.uuid4().hex[:8]}", admin=True, rate_limit_per_minute=None)
            plain = apps.create(conn, f"app-{uuid.uuid4().hex[:8]}", admin=False, rate_limit_per_minute=None)
        engine.dispose()
        client = await aiohttp_client(create_app(settings))
        worker = WorkerProcess(settings).start()
        scheduler = SchedulerProcess(settings, "sched-a", tmp_path).start()
        try:

            async def canary_succeeded() -> dict[str, Any] | None:
                response = await client.get("/v1/schedules", headers={"Authorization": f"Bearer {admin}"})
                assert response.status == 200, await response.text()
                document: dict[str, Any] = await response.json()
                canary = next((item for item in document["items"] if item["task"] == "canary"), None)
                return document if canary and canary["last_success"] and document["leader"] else None

            document = await eventually(canary_succeeded, timeout_s=60, what="a canary run to succeed")
        finally:
            scheduler.kill()
            worker.stop()
        forbidden = await client.get("/v1/schedules", headers={"Authorization": f"Bearer {plain}"})
        assert forbidden.status == 403

    tasks = {item["task"]: item for item in document["items"]}
    assert {"canary", "reconcile", "retention", "payments_sweep", "payment_checks", "daily_reports"} <= set(tasks)
    canary = tasks["canary"]
    assert canary["enabled"] and canary["spec"] == "interval:1" and canary["last_status"] == "succeeded"
    assert datetime.fromisoformat(canary["next_run"]) > datetime.fromisoformat(canary["last_run"])
    off = tasks["retention"]  # scheduler test databases run only the canary
    assert (off["enabled"], off["next_run"], off["spec"]) == (False, None, "off")
    assert "sched-a" in document["leader"]
