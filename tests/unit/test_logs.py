"""JSON log lines: our fields are never overwritten by a call's ``extra``."""

from __future__ import annotations

import json
import logging

from satworks.errors import ChaosRetry
from satworks.logs import ExpectedFailures, JsonFormatter, job_id_var


def line(**extra: object) -> dict[str, object]:
    record = logging.getLogger("satworks.test").makeRecord(
        "satworks.test", logging.INFO, __file__, 1, "hello %s", ("world",), None, extra=extra
    )
    return dict(json.loads(JsonFormatter().format(record)))


def test_extra_keys_named_like_our_fields_are_kept_beside_them() -> None:
    token = job_id_var.set("job-1")
    try:
        doc = line(level="debug", ts="yesterday", logger="other", job_id="forged", exc="none", action="x")
    finally:
        job_id_var.reset(token)
    assert (doc["level"], doc["logger"], doc["msg"], doc["job_id"]) == ("info", "satworks.test", "hello world", "job-1")
    assert doc["ts"] != "yesterday"
    assert "exc" not in doc
    assert {k: doc[k] for k in doc if k.startswith("extra_")} == {
        "extra_level": "debug",
        "extra_ts": "yesterday",
        "extra_logger": "other",
        "extra_job_id": "forged",
        "extra_exc": "none",
    }
    assert doc["action"] == "x"


def dramatiq_failure(error: Exception) -> logging.LogRecord:
    try:
        raise error
    except Exception:
        import sys

        exc_info = sys.exc_info()
    return logging.getLogger("dramatiq.worker.WorkerThread").makeRecord(
        "dramatiq.worker.WorkerThread",
        logging.ERROR,
        __file__,
        1,
        "Failed to process message %s with unhandled exception.",
        ("canary(...)",),
        exc_info,
    )


def test_an_expected_retry_is_one_warning_line_without_a_traceback() -> None:
    record = dramatiq_failure(ChaosRetry("canary asked to fail (transient) on attempt 1"))
    assert ExpectedFailures().filter(record)
    doc = json.loads(JsonFormatter().format(record))
    assert (doc["level"], doc["action"], "exc" in doc) == ("warning", "job_retry", False)
    assert doc["msg"] == (
        "Failed to process message canary(...); it will be retried: ChaosRetry: "
        "canary asked to fail (transient) on attempt 1"
    )


def test_an_unexpected_error_keeps_its_level_and_traceback() -> None:
    record = dramatiq_failure(ZeroDivisionError("boom"))
    assert ExpectedFailures().filter(record)
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "error"
    assert "ZeroDivisionError: boom" in doc["exc"]
