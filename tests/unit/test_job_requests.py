"""Turning a job request into a stored row: validation, scheduling, queues and request hashes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from satworks.db.jobs import NewJob
from satworks.errors import ValidationFailed
from satworks.jobs.request import JobIn
from satworks.jobs.submission import job_row
from satworks.scheduler.tasks import TASKS

APP = uuid.uuid4()


def row(key: str | None = None, **body: object) -> tuple[NewJob, int | None]:
    return job_row(JobIn.model_validate({"type": "canary", **body}), app_id=APP, idempotency_key=key, queue_prefix="p_")


def test_priorities_map_to_prefixed_queues() -> None:
    assert row(priority="high")[0].queue == "p_critical"
    assert row()[0].queue == "p_default"
    assert row(priority="low")[0].queue == "p_bulk"


def test_delay_makes_a_scheduled_job_with_the_delay_in_milliseconds() -> None:
    stored, delay_ms = row(delay_seconds=90)
    assert stored.status == "scheduled"
    assert delay_ms is not None and 89_000 < delay_ms <= 90_000


def test_run_at_in_the_past_is_queued_now() -> None:
    stored, delay_ms = row(run_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
    assert (stored.status, stored.scheduled_for, delay_ms) == ("queued", None, None)


def test_request_hash_depends_on_the_body_not_the_time() -> None:
    assert row("k", payload={"note": "a"})[0].request_hash == row("k", payload={"note": "a"})[0].request_hash
    assert row("k", payload={"note": "a"})[0].request_hash != row("k", payload={"note": "b"})[0].request_hash
    assert row("k")[0].request_hash != row("k", priority="high")[0].request_hash
    assert len(row("k")[0].request_hash) == 64


def test_a_job_without_an_idempotency_key_has_no_request_hash() -> None:
    # Nothing can replay it, so nothing would ever compare the hash.
    assert row()[0].request_hash == ""


def test_unknown_type_and_bad_payload_are_rejected() -> None:
    with pytest.raises(ValidationFailed, match="unknown job type"):
        job_row(JobIn(type="nope"), app_id=APP, idempotency_key=None, queue_prefix="")
    with pytest.raises(ValidationFailed) as caught:
        row(payload={"sleep_ms": "soon"})
    assert caught.value.details[0]["loc"] == ["payload", "sleep_ms"]


@pytest.mark.parametrize("job_type", sorted({t.job_type for t in TASKS.values()} - {"canary"}))
def test_an_app_cannot_submit_the_schedulers_platform_work(job_type: str) -> None:
    # Sweeps and wake-ups are satworks' own work: an app that could submit them could make every
    # worker sweep or read the node as often as its rate limit allows.
    spec = JobIn(type=job_type)
    with pytest.raises(ValidationFailed, match="unknown job type") as refused:
        job_row(spec, app_id=APP, idempotency_key=None, queue_prefix="")
    assert job_type not in refused.value.details["known_types"]
    stored, _ = job_row(spec, app_id=APP, idempotency_key="k", queue_prefix="", internal=True)
    assert stored.type == job_type


def test_naive_run_at_is_refused() -> None:
    with pytest.raises(ValidationError):
        JobIn.model_validate({"type": "canary", "run_at": "2030-01-01T00:00:00"})


@pytest.mark.parametrize("key", [None, "k"])
@pytest.mark.parametrize("note", ["\x00", "a\x00b", "\\\x00"])
def test_u0000_in_the_payload_is_refused_before_it_can_spoil_a_batch(note: str, key: str | None) -> None:
    with pytest.raises(ValidationFailed, match="U\\+0000") as caught:
        row(key, payload={"note": note})
    assert caught.value.details == [{"loc": ["payload"]}]


def test_u0000_in_the_idempotency_key_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="U\\+0000") as caught:
        job_row(JobIn(type="canary"), app_id=APP, idempotency_key="k\x00", queue_prefix="")
    assert caught.value.details == [{"loc": ["idempotency_key"]}]


@pytest.mark.parametrize("key", [None, "k"])
@pytest.mark.parametrize("note", ["\\u0000", "\\\\u0000", "u0000"])
def test_text_that_only_spells_u0000_is_accepted(note: str, key: str | None) -> None:
    assert row(key, payload={"note": note})[0].payload["note"] == note
