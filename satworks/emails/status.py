"""Outbox email states, defined once: the check constraint and the OpenAPI enum come from here."""

from __future__ import annotations

from enum import StrEnum


class EmailStatus(StrEnum):
    #: recorded, its first send not yet made
    QUEUED = "queued"
    #: a send failed for now (4xx, timeout, refused connection); the next one is due at ``next_attempt_at``
    RETRYING = "retrying"
    #: the mail server accepted it (``smtp_reply`` is its answer to DATA); never sent again
    SENT = "sent"
    #: the mail server refused it for good (5xx; ``smtp_reply`` says why)
    FAILED = "failed"
    #: sends kept failing for now until the retry window closed
    DEAD = "dead"


OPEN = frozenset({EmailStatus.QUEUED, EmailStatus.RETRYING})
