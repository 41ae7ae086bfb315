"""Kinds of the platform's audit trail, defined once: the database's check constraint and the API's
``kind`` filter come from here. Rows hold ids, names and causes, never a secret, key or address."""

from __future__ import annotations

from enum import StrEnum


class AuditKind(StrEnum):
    #: an app and its API key were created (``satworks apps create``)
    KEY_CREATED = "key_created"
    #: an app's API key was revoked (``satworks apps revoke``)
    KEY_REVOKED = "key_revoked"
    #: a request came with a missing, malformed, unknown or revoked key; the client address is kept
    AUTH_FAILED = "auth_failed"
    #: an admin gave a dead or failed job a new run (``POST /v1/dead-letters/...``)
    JOB_REQUEUED = "job_requeued"
    #: a payment request changed state (the cause in ``data.reason``)
    PAYMENT_STATUS_CHANGED = "payment_status_changed"
