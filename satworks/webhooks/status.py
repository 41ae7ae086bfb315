"""Webhook delivery states, defined once: the check constraint and the OpenAPI enum come from here."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    #: waiting for its first attempt; the endpoint's pump sends these in event order
    PENDING = "pending"
    #: an attempt failed in a way worth repeating; the next one is due at ``next_attempt_at``
    RETRYING = "retrying"
    #: the receiver answered 2xx
    DELIVERED = "delivered"
    #: a final answer (3xx, 4xx other than 408/429, a refused URL) or the endpoint was deleted
    FAILED = "failed"
    #: retries ran out of their window (24 h by default)
    DEAD = "dead"

    @property
    def is_open(self) -> bool:
        return self in OPEN


OPEN = frozenset({DeliveryStatus.PENDING, DeliveryStatus.RETRYING})
FINISHED = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DEAD})
