"""JSON log lines: our fields are never overwritten by a call's ``extra``."""

from __future__ import annotations

import json
import logging

from satworks.logs import JsonFormatter, job_id_var


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
