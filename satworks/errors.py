"""The one exception tree. Foreign errors are converted into it at the seam that meets them.

SatworksError
├── TransientError          retried with backoff by the worker
│   ├── DependencyUnavailable   Postgres, Redis or the broker cannot be reached
│   │   └── BrokerUnavailable       the broker (Redis or RabbitMQ) refused or dropped a command
│   └── NodeUnavailable         a Bitcoin / Lightning node cannot be asked
├── PermanentError          fails the job at once, never retried
│   ├── InvalidPayload
│   └── ChaosFailure            a canary asked to fail for good
└── RequestError            answered to an HTTP caller, never raised inside jobs
    ├── BadRequest (400) · Unauthorized (401) · Forbidden (403) · NotFound (404)
    ├── Conflict (409) · PayloadTooLarge (413) · UnsupportedMediaType (415)
    ├── ValidationFailed (422) · RateLimited (429)
"""

from __future__ import annotations

from typing import Any


class SatworksError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class TransientError(SatworksError):
    code = "transient_error"


class DependencyUnavailable(TransientError):
    code = "dependency_unavailable"


class BrokerUnavailable(DependencyUnavailable):
    """Raised by ``satworks.broker.errors.broker_errors``; answered 503 with ``{"dependency": "broker"}``."""


class NodeUnavailable(TransientError):
    code = "node_unavailable"


class ChaosRetry(TransientError):
    """A canary asked to fail transiently."""

    code = "chaos_retry"


class PermanentError(SatworksError):
    code = "permanent_error"


class InvalidPayload(PermanentError):
    code = "invalid_payload"


class ChaosFailure(PermanentError):
    code = "chaos_failure"


class RequestError(SatworksError):
    code = "bad_request"


class BadRequest(RequestError):
    code = "bad_request"


class Unauthorized(RequestError):
    code = "unauthorized"


class Forbidden(RequestError):
    code = "forbidden"


class NotFound(RequestError):
    code = "not_found"


class Conflict(RequestError):
    code = "conflict"


class PayloadTooLarge(RequestError):
    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    code = "unsupported_media_type"


class ValidationFailed(RequestError):
    code = "validation_failed"


class RateLimited(RequestError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, details={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s
