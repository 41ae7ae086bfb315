"""What one webhook attempt came to, and whether another attempt could change it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from satworks.errors import WebhookRejected, WebhookUndelivered

RETRYABLE_4XX = frozenset({408, 429})


class Outcome(StrEnum):
    #: the receiver answered 2xx
    DELIVERED = "delivered"
    #: worth another attempt: 5xx, 408, 429, a timeout or a connection error
    RETRY = "retry"
    #: final: a redirect (never followed), any other 4xx, a refused (unsafe) URL
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt, as recorded: ``response_head`` is the first bytes of the answer's body (UTF-8, with
    replacement characters), ``retry_after_s`` the receiver's ``Retry-After`` (capped), ``error`` why it
    was not delivered."""

    outcome: Outcome
    status_code: int | None
    latency_ms: int
    response_head: str = ""
    error: str | None = None
    retry_after_s: float | None = None

    def raise_for_outcome(self) -> None:
        """Nothing when delivered; ``WebhookUndelivered`` (transient) or ``WebhookRejected`` (permanent)."""
        if self.outcome is Outcome.RETRY:
            raise WebhookUndelivered(
                self.error or "not delivered", status_code=self.status_code, retry_after_s=self.retry_after_s
            )
        if self.outcome is Outcome.FAILED:
            raise WebhookRejected(self.error or "rejected", status_code=self.status_code)


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status >= 500 or status in RETRYABLE_4XX:
        return Outcome.RETRY
    return Outcome.FAILED


def retry_after_s(value: str | None, *, now: datetime, cap_s: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date, clamped to [0, cap_s];
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT even when the zone is written -0000
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap_s)


def status_error(status: int, reason: str | None) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status} {reason or ''}: redirects are not followed".replace("  ", " ")
    return f"HTTP {status} {reason or ''}".strip()
