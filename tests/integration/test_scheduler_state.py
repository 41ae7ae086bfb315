"""The scheduler's slots against real Postgres and Redis, in this process: keys, restarts, misfires, outcomes.

Each test has a database of its own (scheduler state and the leader lock are per database) and
counts every ``submit`` the scheduler makes, so a slot submitted twice is seen even though the
job store would turn the second submission into the first job.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from satworks import clock
from satworks.broker.build import build_broker
from satworks.errors import DependencyUnavailable
from satworks.metrics.scheduler import SchedulerMetrics
from satworks.scheduler import intake_adapter
from satworks.scheduler.intake_adapter import IntakeSubmit
from satworks.scheduler.service import SchedulerService, scheduler_engine
from satworks.scheduler.submit import Submitted, run_key
from satworks.settings import Settings
from tests.scheduler_support import fresh_database, runs, scheduled_job_count
from tests.support import WorkerProcess, scalar, wait_until

FAST = {"scheduler_takeover_s": 6.0, "scheduler_check_s": 1.0, "scheduler_retry_s": 1.0}


@pytest.fixture
def sched_settings(base_settings: Settings) -> Iterator[Settings]:
    with fresh_database(base_settings, schedule_canary="interval:1", **FAST) as settings:
        yield settings


class CountingSubmit:
    """The production adapter, with every call counted."""

    def __init__(self, inner: IntakeSubmit) -> None:
        self.inner = inner
        self.slots: list[datetime] = []
        self._lock = threading.Lock()

    def submit(self, task: str, fire_at: datetime, **kwargs: Any) -> Submitted:
        with self._lock:
            self.slots.append(fire_at)
        return self.inner.submit(task, fire_at, **kwargs)


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = scheduler_engine(settings, "test")
        self.broker = build_broker(settings)
        self.submit = CountingSubmit(IntakeSubmit(settings, self.engine))
        self.registry = CollectorRegistry()
        self.closing: list[IntakeSubmit] = []

    @contextmanager
    def service(self) -> Iterator[SchedulerService]:
        self.registry = CollectorRegistry()  # the running service's metrics
        service = SchedulerService(
            self.settings,
            submit=self.submit,  # type: ignore[arg-type]
            engine=self.engine,
            metrics=SchedulerMetrics.create(self.registry),
            instance=f"t-{uuid.uuid4().hex[:6]}",
        )
        service.start()
        try:
            wait_until(service.elector.is_leader, timeout_s=15, what="the scheduler to lead")
            yield service
        finally:
            service.stop()

    def close(self) -> None:
        self.submit.inner.close()
        for adapter in self.closing:
            adapter.close()
        self.broker.close()
        self.engine.dispose()


@pytest.fixture
def harness(sched_settings: Settings) -> Iterator[Harness]:
    h = Harness(sched_settings)
    yield h
    h.close()


def _run_slots(settings: Settings) -> list[datetime]:
    return [r["fire_at"] for r in runs(settings)]


def test_one_slot_submitted_by_two_leaders_at_once_is_one_job_with_one_message(harness: Harness) -> None:
    other = IntakeSubmit(harness.settings, harness.engine)
    harness.closing.append(other)
    slot = clock.utcnow().replace(microsecond=0)
    results: list[Submitted] = []
    barrier = threading.Barrier(2)

    def submit(adapter: Any) -> None:
        barrier.wait()
        results.append(adapter.submit("canary", slot, job_type="canary", payload={}, priority=None))

    threads = [threading.Thread(target=submit, args=(a,)) for a in (harness.submit.inner, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len({r.job_id for r in results}) == 1
    assert sorted(r.created for r in results) == [False, True]
    assert scheduled_job_count(harness.settings) == 1
    job_id = str(results[0].job_id)
    assert scalar(harness.settings, "SELECT idempotency_key FROM jobs WHERE id = %s", job_id) == run_key("canary", slot)
    client = redis.Redis.from_url(harness.settings.effective_broker_url)
    try:
        messages = client.hvals(f"satworks:{harness.settings.queue_prefix}default.msgs")
    finally:
        client.close()
    assert sum(job_id.encode() in m for m in messages) == 1


def test_the_scheduler_app_has_no_usable_api_key(harness: Harness) -> None:
    harness.submit.inner.app_id()
    row = scalar(harness.settings, "SELECT row(key_id, key_hash, scopes) FROM apps WHERE name = 'satworks-scheduler'")
    key_id, key_hash, scopes = row
    assert len(key_id) != 12 and set(key_hash) == {"-"} and scopes in ("{}", [])


def test_a_restarted_scheduler_does_not_rerun_a_slot_that_already_ran(harness: Harness) -> None:
    harness.settings = harness.settings.model_copy(update={"schedule_canary": "interval:2"})
    with harness.service():
        wait_until(lambda: _run_slots(harness.settings), timeout_s=15, what="a first run")
    first = _run_slots(harness.settings)[-1]
    with harness.service():
        wait_until(lambda: _run_slots(harness.settings)[-1] > first, timeout_s=15, what="a run after the restart")
    assert harness.submit.slots.count(first) == 1
    assert harness.submit.slots == sorted(set(harness.submit.slots))  # every slot once, in order
    assert _run_slots(harness.settings) == harness.submit.slots


def test_slots_missed_while_no_scheduler_ran_run_once(harness: Harness) -> None:
    with harness.service():
        wait_until(lambda: _run_slots(harness.settings), timeout_s=15, what="a first run")
    last = _run_slots(harness.settings)[-1]  # read once it has stopped: a slot may come due while it stops
    # Nobody schedules while at least three one-second slots pass.
    wait_until(lambda: clock.utcnow() >= last + timedelta(seconds=3.5), timeout_s=10, what="three slots to pass")
    with harness.service():
        after = wait_until(
            lambda: (
                [s for s in _run_slots(harness.settings) if s > last][:2] if len(_run_slots(harness.settings)) else 0
            ),
            timeout_s=15,
            what="runs after the pause",
        )
        wait_until(lambda: len([s for s in _run_slots(harness.settings) if s > last]) >= 2, timeout_s=15, what="2 runs")
    resumed = [s for s in harness.submit.slots if s > last]
    catch_up = resumed[0]
    assert catch_up - last >= timedelta(seconds=3)  # the slots in between ...
    assert [s for s in harness.submit.slots if last < s < catch_up] == []  # ... were not run one by one
    assert resumed[1] > catch_up and after[0] == catch_up


def test_finished_runs_give_last_success_and_canary_latency(harness: Harness) -> None:
    worker = WorkerProcess(harness.settings).start()
    try:
        with harness.service() as service:

            def succeeded() -> Any:
                service.refresh()
                return scalar(harness.settings, "SELECT last_success_at FROM schedules WHERE task = 'canary'")

            last_success = wait_until(succeeded, timeout_s=30, what="a scheduled canary to succeed")
            sample = harness.registry.get_sample_value
            assert (sample("satworks_canary_latency_seconds_count") or 0) >= 1
            canary = {"task": "canary"}
            assert sample("satworks_schedule_last_success_timestamp_seconds", canary) == last_success.timestamp()
            assert sample("satworks_scheduler_is_leader") == 1
            next_run = sample("satworks_schedule_next_run_timestamp_seconds", canary)
            assert next_run is not None and next_run > (
                sample("satworks_schedule_last_run_timestamp_seconds", canary) or 0
            )
    finally:
        worker.stop()
    done = [r for r in runs(harness.settings) if r["status"] is not None]
    assert done and all(r["status"] == "succeeded" and r["attempts"] == 1 for r in done)


def test_a_submission_the_intake_never_answers_is_a_counted_failed_slot(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker call without a deadline of its own (a wedged RabbitMQ) must not end in an uncounted
    TimeoutError inside APScheduler."""
    monkeypatch.setattr(intake_adapter, "SUBMIT_TIMEOUT_S", 0.5)
    intake = harness.submit.inner._intake.result(timeout=30)

    async def never_answers(*args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()

    monkeypatch.setattr(intake.jobs, "submit", never_answers)
    with pytest.raises(DependencyUnavailable, match=r"did not answer within 0\.5 s"):
        harness.submit.submit("canary", clock.utcnow(), job_type="canary", payload={}, priority=None)
    with harness.service():
        failures = {"task": "canary"}
        wait_until(
            lambda: (harness.registry.get_sample_value("satworks_schedule_submit_failures_total", failures) or 0) >= 1,
            timeout_s=15,
            what="a failed slot counted",
        )
    assert runs(harness.settings) == []
