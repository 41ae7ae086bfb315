"""A worker pool's stderr: JSON lines only (Dramatiq's text format is not mixed in), and an expected,
retried failure is one warning line without a traceback (issue 8)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from satworks.http.app import create_app
from satworks.settings import Settings
from tests.integration.jobs_helpers import post_job, wait_for_status
from tests.support import WorkerProcess, free_port


async def test_a_retried_job_leaves_json_lines_and_no_traceback(
    aiohttp_client: Any, base_settings: Settings, auth: Any, tmp_path: Path
) -> None:
    settings = base_settings.model_copy(
        update={
            "queue_prefix": f"{base_settings.queue_prefix}l{uuid.uuid4().hex[:6]}_",
            "worker_metrics_port": free_port(),
        }
    )
    settings = settings.model_copy(update={"log_level": "INFO"})
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log=log).start()
    try:
        client = await aiohttp_client(create_app(settings))
        job = await post_job(client, auth, payload={"fail": "transient", "fail_attempts": 1})
        await wait_for_status(client, auth, job["id"], "succeeded", timeout_s=60)
    finally:
        worker.stop()
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    documents = []
    for line in lines:
        try:
            documents.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    retries = [d for d in documents if d.get("action") == "job_retry"]
    assert len(retries) == 1, documents
    assert (retries[0]["level"], "ChaosRetry" in retries[0]["msg"]) == ("warning", True)
    assert not any("Traceback" in line for line in lines)
