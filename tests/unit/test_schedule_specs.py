"""Schedule specs as operators write them, slots every host computes alike, and settings that refuse bad ones."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from satworks.jobs.catalog import JOB_TYPES
from satworks.jobs.request import JobIn
from satworks.jobs.submission import job_row
from satworks.scheduler.specs import parse, slot
from satworks.scheduler.submit import run_key
from satworks.scheduler.tasks import TASKS, schedules, setting_name
from satworks.settings import Settings
from tests.support import ROOT


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("interval:60", 60), ("interval:5m", 300), ("Interval: 2h", 7200), ("interval:1d", 86400), ("interval:1", 1)],
)
def test_intervals_take_seconds_or_a_unit(text: str, seconds: int) -> None:
    schedule = parse(text)
    assert (schedule.kind, schedule.interval_s, schedule.text) == ("interval", seconds, f"interval:{seconds}")


def test_off_disables_a_task() -> None:
    assert not parse("off").enabled
    assert parse("off").next_after(datetime(2024, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "text",
    ["", "every minute", "interval:", "interval:0", "interval:1.5", "interval:5x", "cron:* * *", "cron:61 * * * *",
     "cron:0 3 * * 8", "cron:0 3 * * 5-2", "60", "off:now"],
)  # fmt: skip
def test_malformed_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse(text)


def test_interval_slots_are_multiples_of_the_interval_since_the_epoch() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 30, 250_000, tzinfo=UTC)
    assert parse("interval:60").next_after(moment) == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    seven = parse("interval:7").next_after(moment)
    assert seven is not None and int(seven.timestamp()) % 7 == 0 and 0 < (seven - moment).total_seconds() <= 7
    on_a_slot = datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    assert parse("interval:60").next_after(on_a_slot) == datetime(2024, 5, 1, 12, 2, tzinfo=UTC)


def test_cron_is_utc_and_counts_weekdays_like_crontab() -> None:
    saturday = datetime(2024, 5, 4, 12, 0, tzinfo=UTC)
    assert parse("cron:0 3 * * *").next_after(saturday) == datetime(2024, 5, 5, 3, 0, tzinfo=UTC)
    assert parse("cron:0 3 * * 0").next_after(saturday) == datetime(2024, 5, 5, 3, 0, tzinfo=UTC)  # Sunday
    assert parse("cron:0 3 * * 7").next_after(saturday) == datetime(2024, 5, 5, 3, 0, tzinfo=UTC)
    assert parse("cron:0 3 * * 1-5").next_after(saturday) == datetime(2024, 5, 6, 3, 0, tzinfo=UTC)  # Monday
    assert parse("cron:30 4 * * mon").next_after(saturday) == datetime(2024, 5, 6, 4, 30, tzinfo=UTC)
    every_other = parse("cron:0 0 * * */2")  # crontab: Sunday, Tuesday, Thursday, Saturday
    assert every_other.next_after(datetime(2024, 5, 5, 12, 0, tzinfo=UTC)) == datetime(2024, 5, 7, 0, 0, tzinfo=UTC)


def test_a_new_leader_starts_after_the_last_run_or_with_one_run_for_all_it_missed() -> None:
    minutely, noon = parse("interval:60"), datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert minutely.first_slot(noon, noon.replace(second=30)) == noon.replace(minute=1)  # the last one ran
    assert minutely.first_slot(noon, noon.replace(minute=5, second=30)) == noon.replace(minute=5)  # 5 missed: 1 run
    assert minutely.first_slot(None, noon.replace(second=30)) == noon.replace(minute=1)  # never ran: next slot
    every_second = parse("interval:1")
    assert every_second.first_slot(noon.replace(year=2023), noon) == noon  # a year of slots, no iteration
    daily = parse("cron:0 3 * * *")
    assert daily.first_slot(datetime(2024, 4, 28, 3, tzinfo=UTC), datetime(2024, 5, 1, 4, tzinfo=UTC)) == datetime(
        2024, 5, 1, 3, tzinfo=UTC
    )
    assert daily.first_slot(datetime(2024, 5, 1, 3, tzinfo=UTC), datetime(2024, 5, 1, 4, tzinfo=UTC)) == datetime(
        2024, 5, 2, 3, tzinfo=UTC
    )


def test_slots_are_whole_seconds() -> None:
    assert slot(datetime(2024, 5, 1, 12, 0, 59, 999_999, tzinfo=UTC)) == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    assert slot(datetime(2024, 5, 1, 12, 1, 0, 1, tzinfo=UTC)) == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)


def test_run_key_names_the_task_and_its_slot_in_utc() -> None:
    assert run_key("canary", datetime(2024, 5, 1, 3, 0, tzinfo=UTC)) == "schedule:canary:2024-05-01T03:00:00Z"


def test_a_bad_schedule_setting_fails_with_its_name() -> None:
    with pytest.raises(ValidationError, match="schedule_canary") as caught:
        Settings(schedule_canary="every minute")
    assert "interval:<n>" in str(caught.value)
    assert Settings(schedule_canary=" interval:1m ").schedule_canary == "interval:60"


def test_scheduler_timings_must_leave_room_for_the_lease() -> None:
    with pytest.raises(ValidationError, match="scheduler_takeover_s"):
        Settings(scheduler_takeover_s=6, scheduler_retry_s=3, scheduler_check_s=2)
    with pytest.raises(ValidationError, match="scheduler_takeover_s"):  # a standby's session would time out
        Settings(scheduler_takeover_s=20, scheduler_retry_s=10, scheduler_check_s=1)
    ok = Settings(scheduler_takeover_s=15, scheduler_retry_s=3, scheduler_check_s=2)
    assert (ok.scheduler_idle_timeout_s, ok.scheduler_lease_s) == (11, 10)


def test_every_task_has_a_setting_and_submits_a_valid_job() -> None:
    assert set(schedules(Settings())) == set(TASKS)
    for task in TASKS.values():
        assert setting_name(task.name) in Settings.model_fields
        assert task.job_type in JOB_TYPES
        spec = JobIn.model_validate({"type": task.job_type, "payload": dict(task.payload), "priority": task.priority})
        row, _ = job_row(spec, app_id=uuid.uuid4(), idempotency_key="k", queue_prefix="", internal=True)
        assert row.type == task.job_type


def test_the_scheduler_command_names_a_bad_setting_without_a_traceback() -> None:
    env = {"PATH": "/usr/bin:/bin", "SATWORKS_SCHEDULE_CANARY": "every minute"}
    done = subprocess.run(
        [sys.executable, "-m", "satworks.cli", "scheduler"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SATWORKS_SCHEDULE_CANARY" in done.stderr and "interval:<n>" in done.stderr
    assert "Traceback" not in done.stderr
