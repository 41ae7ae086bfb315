"""The one exception tree. Foreign errors are converted into it at the seam that meets them.

SatworksError
├── TransientError          retried with backoff by the worker
│   ├── DependencyUnavailable   Postgres, Redis or the broker cannot be reached
│   │   └── BrokerUnavailable       the broker (Redis or RabbitMQ) refused or dropped a command
│   ├── NodeUnavailable         a Bitcoin / Lightning node cannot be asked
│   ├── SmtpTempFailure         the mail server answered 4xx, timed out or could not be reached
│   ├── WebhookUndelivered      a webhook attempt worth repeating failed (5xx, 408, 429, timeout, connection)
│   └── RetryWindowClosed       retries would start past their time window: the work is dead
├── PermanentError          fails the job at once, never retried
│   ├── InvalidPayload
│   │   ├── InvalidEmailAddress     an address email-validator refuses
│   │   └── TemplateError           an unknown email template or a context it cannot render
│   ├── SmtpRejected            the mail server answered 5xx (reply code and text kept)
│   ├── WebhookRejected         the receiver's answer is final (3xx, 4xx other than 408/429)
│   ├── UnsafeWebhookUrl        not http(s), or the host resolves to a refused address (SSRF guard)
│   └── ChaosFailure            a canary asked to fail for good
└── RequestError            answered to an HTTP caller, never raised inside jobs
    ├── BadRequest (400) · ClientDisconnected (400: the client left mid-body) · Unauthorized (401)
    ├── Forbidden (403) · NotFound (404) · RequestTimeout (408) · Conflict (409)
    ├── PayloadTooLarge (413) · UnsupportedMediaType (415) · ValidationFailed (422) · RateLimited (429)
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


class SmtpTempFailure(TransientError):
    """A 4xx reply, a timeout or a refused connection: the same email may go through later."""

    code = "smtp_temp_failure"

    def __init__(self, message: str, *, smtp_code: int | None = None, smtp_reply: str | None = None) -> None:
        super().__init__(message, details={"smtp_code": smtp_code, "smtp_reply": smtp_reply})
        self.smtp_code = smtp_code
        self.smtp_reply = smtp_reply


class WebhookUndelivered(TransientError):
    """An attempt failed in a way worth repeating; ``retry_after_s`` is the receiver's wish, if any."""

    code = "webhook_undelivered"

    def __init__(self, message: str, *, status_code: int | None, retry_after_s: float | None) -> None:
        super().__init__(message, details={"status_code": status_code, "retry_after_s": retry_after_s})
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class RetryWindowClosed(TransientError):
    """The next retry would start after the retry window: the work ends ``dead``, not ``failed``."""

    code = "retry_window_closed"


class PermanentError(SatworksError):
    code = "permanent_error"


class InvalidPayload(PermanentError):
    code = "invalid_payload"


class InvalidEmailAddress(InvalidPayload):
    code = "invalid_email_address"


class TemplateError(InvalidPayload):
    code = "template_error"


class SmtpRejected(PermanentError):
    """A 5xx reply (or a server that cannot do what the settings ask): sending again will not help."""

    code = "smtp_rejected"

    def __init__(self, message: str, *, smtp_code: int | None = None, smtp_reply: str | None = None) -> None:
        super().__init__(message, details={"smtp_code": smtp_code, "smtp_reply": smtp_reply})
        self.smtp_code = smtp_code
        self.smtp_reply = smtp_reply


class WebhookRejected(PermanentError):
    code = "webhook_rejected"

    def __init__(self, message: str, *, status_code: int | None) -> None:
        super().__init__(message, details={"status_code": status_code})
        self.status_code = status_code


class UnsafeWebhookUrl(PermanentError):
    code = "unsafe_webhook_url"


class ChaosFailure(PermanentError):
    code = "chaos_failure"


class RequestError(SatworksError):
    code = "bad_request"


class BadRequest(RequestError):
    code = "bad_request"


class ClientDisconnected(BadRequest):
    """The client closed its connection before its request arrived: nobody reads the answer."""

    code = "client_disconnected"


class RequestTimeout(RequestError):
    """The request (its body) did not arrive in time; the connection is closed after the answer."""

    code = "request_timeout"


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
