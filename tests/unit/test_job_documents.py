"""A job's document is built as a dict and serialised by orjson (``JobOut.document``): it must be what
the ``JobOut`` model, which the API's schema describes, would validate and write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from satworks.db.jobs import JobRecord
from satworks.http.requests import json_response
from satworks.http.schemas import JobOut
from satworks.jobs.status import JobStatus

PREFIX = "p_"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # beyond 64 bits too: orjson refuses those
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
moments = st.builds(
    lambda at, micro, hours: (at + timedelta(microseconds=micro)).astimezone(timezone(timedelta(hours=hours))),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([0, 1, 999_999]),
    st.sampled_from([0, 0, 2, -5]),  # a session time zone other than UTC gives aware datetimes at other offsets
)
records = st.builds(
    JobRecord,
    id=st.uuids(version=4),
    app_id=st.uuids(version=4),
    type=st.sampled_from(["canary", "report.daily"]),
    queue=st.sampled_from([PREFIX + "critical", PREFIX + "default", PREFIX + "bulk"]),
    priority=st.sampled_from(["high", "normal", "low"]),
    status=st.sampled_from(list(JobStatus)),
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    result=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    error_type=st.none() | st.sampled_from(["WorkerCrashed", "ValueError"]),
    error_message=st.none() | st.text(max_size=20).filter(lambda t: "\x00" not in t),
    attempts=st.integers(min_value=0, max_value=50),
    max_retries=st.integers(min_value=0, max_value=50),
    idempotency_key=st.none() | st.text(min_size=1, max_size=10),
    request_hash=st.just(""),
    created_at=moments,
    scheduled_for=st.none() | moments,
    started_at=st.none() | moments,
    finished_at=st.none() | moments,
    next_retry_at=st.none() | moments,
    seq=st.integers(min_value=1, max_value=2**62),
)


def body(document: Any) -> Any:
    raw = json_response(document).body
    assert isinstance(raw, bytes)
    return orjson.loads(raw)


@settings(max_examples=300, deadline=None)
@given(records)
def test_a_job_document_is_what_the_job_model_validates_and_writes(job: JobRecord) -> None:
    document = JobOut.document(job, queue_prefix=PREFIX)
    model = JobOut.model_validate(document)  # the schema's model takes the document as it is

    assert body(document) == body(model)
    assert model.queue == job.queue.removeprefix(PREFIX)
    assert (model.error is None) == (job.error_type is None)


def test_the_document_of_a_new_job_is_byte_for_byte_the_models() -> None:
    created = datetime(2026, 12, 7, 7, 30, 0, 123456, tzinfo=UTC)
    job = JobRecord(
        uuid.uuid4(), uuid.uuid4(), "canary", PREFIX + "default", "normal", JobStatus.QUEUED,
        {"note": "é", "n": 3, "nested": {"list": [1, None, True]}}, None, None, None, 0, 5, None, "",
        created, None, None, None, None, 7,
    )  # fmt: skip
    document = JobOut.document(job, queue_prefix=PREFIX)

    assert json_response(document).body == json_response(JobOut.model_validate(document)).body
