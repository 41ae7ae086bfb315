"""``canary``: a no-op that records its run, for smoke tests, benchmarks and end-to-end monitoring.

With ``SATWORKS_CANARY_CHAOS=true`` it can also be asked to fail, to be slow or to kill its worker,
so retries, time limits and crash recovery can be exercised on a live system.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Literal

from pydantic import Field

from satworks import clock
from satworks.errors import ChaosFailure, ChaosRetry, InvalidPayload
from satworks.jobs.base import JobContext, JobType, Payload


class CanaryPayload(Payload):
    note: str | None = Field(None, max_length=200)
    sleep_ms: int = Field(0, ge=0, le=600_000)
    fail: Literal["transient", "permanent"] | None = None
    fail_attempts: int = Field(1_000_000, ge=1, description="fail only on the first N attempts")
    crash: bool = Field(False, description="kill the worker process (SIGKILL) while running")


def run(ctx: JobContext, payload: CanaryPayload) -> dict[str, object]:
    chaos = payload.sleep_ms or payload.fail or payload.crash
    if chaos and not ctx.settings.canary_chaos:
        raise InvalidPayload("canary chaos options need SATWORKS_CANARY_CHAOS=true")
    if payload.crash and ctx.attempt <= payload.fail_attempts:
        os.kill(os.getpid(), signal.SIGKILL)
    if payload.sleep_ms:
        time.sleep(payload.sleep_ms / 1000)
    if payload.fail and ctx.attempt <= payload.fail_attempts:
        error = ChaosRetry if payload.fail == "transient" else ChaosFailure
        raise error(f"canary asked to fail ({payload.fail}) on attempt {ctx.attempt}")
    return {"ran_at": clock.utcnow().isoformat(), "attempt": ctx.attempt, "pid": os.getpid()}


CANARY = JobType(name="canary", payload=CanaryPayload, run=run, min_backoff_ms=200, max_backoff_ms=5_000)
