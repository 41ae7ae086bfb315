"""Postgres advisory lock ids, all in one place: two features that took the same id would exclude each
other. Until this module, the reconciler, the Lightning sweep and the outbox dispatcher all used
``0x5A70002``: a Lightning sweep was skipped whenever a dispatch or a reconciler run held it, and
the dispatcher waited behind both. ``@unique`` makes a repeated id fail at import.

The scheduler's leader lock is the two-integer form (``db/schedules.py``), which Postgres keeps apart
from these single-``bigint`` ids."""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class AdvisoryLock(IntEnum):
    PAYMENTS_SWEEP = 0x5A7_0001  # one on-chain sweep at a time
    RECONCILE = 0x5A7_0002  # one reconciler run at a time
    LIGHTNING_SWEEP = 0x5A7_0003  # one Lightning sweep at a time
    OUTBOX_DISPATCH = 0x5A7_0004  # one outbox dispatcher at a time
