"""JSON logs with a stable ``action`` and the ids of the request or job being handled."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

_PAYLOAD_LOGGERS = ("aiohttp.access", "BitcoinRPC")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_OWN = {"ts", "level", "logger", "msg", "request_id", "job_id", "exc"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            value = (request_id_var if key == "request_id" else job_id_var).get()
            if value is not None:
                doc[key] = value
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                # An ``extra`` named like a field of ours (``level``, ``ts``…) must not overwrite it.
                doc[f"extra_{key}" if key in _OWN else key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class ExpectedFailures(logging.Filter):
    """Dramatiq logs every exception an actor raises at error level with a traceback. A ``TransientError``
    is expected (the job is retried with backoff): one warning line naming it, no traceback. Tracebacks
    stay for what nobody expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        from satworks.errors import TransientError  # logs is imported before everything else

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TransientError) and record.name.startswith("dramatiq"):
            record.msg, record.args = (
                "%s; it will be retried: %s: %s",
                (
                    record.getMessage().removesuffix(" with unhandled exception."),
                    type(error).__name__,
                    error,
                ),
            )
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
            record.action = "job_retry"
        return True


def configure(level: str) -> None:
    """JSON lines on stderr (one object a line, for log shippers), or readable text when stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(ExpectedFailures())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Loggers that write request lines or RPC payloads (token query strings, payment addresses)
    # stay above DEBUG whatever the level: tests/acceptance/test_no_secrets_in_logs.py.
    for name in _PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
