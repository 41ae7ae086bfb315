"""Several ``satworks scheduler`` processes on one database: one leads, and another takes over in bounded time.

Each test has its own database (the leader lock is per database) and reads which process leads from
``satworks_scheduler_is_leader`` on each process's metrics port, and what each submitted from its
JSON log. Takeover times are printed (``-s``); the only deadline is the documented bound.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from satworks.settings import Settings
from tests.scheduler_support import SchedulerProcess, fresh_database, runs, scheduled_job_count
from tests.support import WorkerProcess, db_dsn, wait_until

pytestmark = pytest.mark.acceptance

FAST = {"scheduler_takeover_s": 6.0, "scheduler_check_s": 1.0, "scheduler_retry_s": 1.0}


@pytest.fixture
def processes() -> Iterator[list[SchedulerProcess]]:
    started: list[SchedulerProcess] = []
    yield started
    for process in started:
        process.kill()


def _start(settings: Settings, name: str, tmp_path: Path, started: list[SchedulerProcess]) -> SchedulerProcess:
    process = SchedulerProcess(settings, name, tmp_path).start()
    started.append(process)
    wait_until(lambda: process.leading() is not None, timeout_s=30, what=f"scheduler {name} to serve metrics")
    return process


def _leaders(*processes: SchedulerProcess) -> list[str]:
    return [p.name for p in processes if p.leading()]


def _takeover(new: SchedulerProcess, since: float, bound_s: float, what: str) -> float:
    wait_until(lambda: new.leading(), timeout_s=bound_s, what=f"{new.name} to lead ({what})")
    took = time.monotonic() - since
    print(f"\nscheduler takeover after {what}: {took:.2f} s (bound {bound_s:.0f} s)")
    return took


def _one_job_per_slot(*processes: SchedulerProcess) -> None:
    """A slot submitted by two schedulers (one of them on its way out) made a new job only once."""
    new_jobs: dict[str, int] = {}
    for process in processes:
        for record in process.logs("schedule_submitted"):
            new_jobs[str(record["fire_at"])] = new_jobs.get(str(record["fire_at"]), 0) + bool(record["new_job"])
    assert all(count <= 1 for count in new_jobs.values()), new_jobs


def _wall(record: dict[str, object]) -> float:
    return datetime.fromisoformat(str(record["ts"])).timestamp()


def test_two_schedulers_elect_one_leader_and_submit_each_slot_once(
    base_settings: Settings, tmp_path: Path, processes: list[SchedulerProcess]
) -> None:
    with fresh_database(base_settings, schedule_canary="interval:1", **FAST) as settings:
        worker = WorkerProcess(settings).start()
        try:
            a = _start(settings, "a", tmp_path, processes)
            b = _start(settings, "b", tmp_path, processes)
            seen_leaders = set()

            def six_runs() -> bool:
                leaders = _leaders(a, b)
                assert len(leaders) <= 1, f"two leaders at once: {leaders}"
                seen_leaders.update(leaders)
                return len(runs(settings)) >= 6

            wait_until(six_runs, timeout_s=60, what="six scheduled runs")
            leader, standby = (a, b) if a.leading() else (b, a)
            assert seen_leaders == {leader.name}
            assert standby.submitted_slots() == []
            recorded = [r["fire_at"] for r in runs(settings)]
            assert leader.submitted_slots()[: len(recorded)] == recorded  # each slot once, in order
            assert scheduled_job_count(settings) == len(leader.submitted_slots())

            def canary_latency_observed() -> bool:
                samples = leader.metrics() or {}
                return samples.get("satworks_canary_latency_seconds_count", 0) >= 1

            wait_until(canary_latency_observed, timeout_s=30, what="a canary's latency on the leader")
            samples = leader.metrics() or {}
            assert samples["satworks_schedule_last_success_timestamp_seconds{task=canary}"] > 0
            wait_until(
                lambda: (standby.metrics() or {}).get("satworks_schedule_last_run_timestamp_seconds{task=canary}"),
                timeout_s=15,
                what="the standby's gauges, read from Postgres",
            )
        finally:
            worker.stop()


def test_a_standby_takes_over_within_the_bound_when_the_leader_is_killed(
    base_settings: Settings, tmp_path: Path, processes: list[SchedulerProcess]
) -> None:
    # Production timings (takeover bound 15 s, checks every 2 s, standby retries every 3 s).
    with fresh_database(base_settings, schedule_canary="interval:1") as settings:
        a = _start(settings, "a", tmp_path, processes)
        wait_until(a.leading, timeout_s=30, what="a to lead")
        b = _start(settings, "b", tmp_path, processes)
        wait_until(lambda: a.submitted_slots(), timeout_s=15, what="a to submit")
        a.kill()
        killed = time.monotonic()
        _takeover(b, killed, settings.scheduler_takeover_s, "SIGKILL of the leader")
        wait_until(lambda: b.submitted_slots(), timeout_s=15, what="b to submit")
        _one_job_per_slot(a, b)
        # A slot whose job the killed leader made but had not yet recorded may be the only one unrecorded.
        assert 0 <= scheduled_job_count(settings) - len(runs(settings)) <= 1


def test_a_leader_that_loses_its_lock_connection_stops_and_a_standby_takes_over(
    base_settings: Settings, tmp_path: Path, processes: list[SchedulerProcess]
) -> None:
    with fresh_database(base_settings, schedule_canary="interval:1", **FAST) as settings:
        a = _start(settings, "a", tmp_path, processes)
        wait_until(a.leading, timeout_s=30, what="a to lead")
        b = _start(settings, "b", tmp_path, processes)
        wait_until(lambda: a.submitted_slots(), timeout_s=15, what="a to submit")
        with psycopg.connect(db_dsn(settings), autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'satworks-scheduler:a' AND datname = current_database()"
            ).fetchall()
        assert ended == [(True,)]
        cut = time.monotonic()
        wait_until(lambda: a.leading() is False, timeout_s=settings.scheduler_takeover_s, what="a to step down")
        print(f"\nleader stepped down {time.monotonic() - cut:.2f} s after its lock connection was ended")
        _takeover(b, cut, settings.scheduler_takeover_s, "the leader's lock connection was ended")
        wait_until(lambda: b.submitted_slots(), timeout_s=15, what="b to submit")
        stepped_down = _wall(a.logs("leader_deposed")[0])
        # Only a run already submitting when the lock went may finish after that; no later slot is a's.
        assert [s for s in a.submitted_slots() if s.timestamp() > stepped_down] == []
        _one_job_per_slot(a, b)


def test_a_frozen_leader_is_replaced_and_submits_nothing_when_it_wakes(
    base_settings: Settings, tmp_path: Path, processes: list[SchedulerProcess]
) -> None:
    # SIGSTOP: alive but silent, like a leader cut off from Postgres. Postgres ends its session after
    # the idle timeout (takeover - retry - 1 = 4 s here); its own lease ran out 1 s before that.
    with fresh_database(base_settings, schedule_canary="interval:1", **FAST) as settings:
        a = _start(settings, "a", tmp_path, processes)
        wait_until(a.leading, timeout_s=30, what="a to lead")
        b = _start(settings, "b", tmp_path, processes)
        wait_until(lambda: a.submitted_slots(), timeout_s=15, what="a to submit")
        a.signal(signal.SIGSTOP)
        frozen, frozen_wall = time.monotonic(), datetime.now(UTC).timestamp()
        _takeover(b, frozen, settings.scheduler_takeover_s, "the leader froze")
        wait_until(lambda: b.submitted_slots(), timeout_s=15, what="b to submit")
        a.signal(signal.SIGCONT)
        wait_until(lambda: a.logs("leader_deposed"), timeout_s=15, what="a to notice it lost the lock")
        # A run already submitting when it froze may finish on waking; no slot due since is a's.
        assert [s for s in a.submitted_slots() if s.timestamp() > frozen_wall] == []
        assert a.leading() is False and b.leading() is True
        _one_job_per_slot(a, b)
