"""Webhook events: the types apps can subscribe to and the JSON envelope they receive (docs/webhooks.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from satworks.errors import InvalidPayload
from satworks.payments.status import EVENT_FOR_STATUS, PAID_LATE_EVENT

#: Every event type, in documentation order; ``draw.*`` and ``report.ready`` arrive with their features.
EVENT_TYPES: tuple[str, ...] = (
    *EVENT_FOR_STATUS.values(),
    PAID_LATE_EVENT,
    "job.succeeded",
    "job.failed",
    "job.dead",
    "draw.committed",
    "draw.completed",
    "report.ready",
)


@dataclass(frozen=True)
class WebhookEvent:
    """``{"id", "type", "created_at", "data"}``: ``id`` is the same on every attempt (receivers dedupe on it)."""

    id: str
    type: str
    created_at: datetime
    data: Mapping[str, Any]

    def body(self) -> bytes:
        """The JSON sent; the same bytes for the same event (``created_at``: RFC 3339, UTC, milliseconds)."""
        created = self.created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        document = {"id": self.id, "type": self.type, "created_at": created, "data": self.data}
        return orjson.dumps(document)

    def headers(self) -> dict[str, str]:
        return {"X-Satworks-Event-Id": self.id, "X-Satworks-Event-Type": self.type}


def event_id(app_event_row_id: int) -> str:
    """The public id of an ``app_events`` row: ``evt_<row id>``."""
    return f"evt_{app_event_row_id}"


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """An endpoint's subscriptions: exact types, ``family.*`` or ``*``; raises ``InvalidPayload`` naming
    every pattern that matches no known event type."""
    patterns = list(dict.fromkeys(patterns))
    unknown = [p for p in patterns if not any(matches([p], t) for t in EVENT_TYPES)]
    if not patterns or unknown:
        raise InvalidPayload(
            f"unknown event types: {', '.join(unknown)}" if unknown else "subscribe to at least one event type",
            details={"unknown": unknown, "known": list(EVENT_TYPES)},
        )
    return patterns


def matches(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False
