"""Payment requests whose messages must be sent again, picked and stamped in one statement, throttled.

Two kinds: requests still ``creating`` (their address job was lost or ran out of retries: the web
process's stranded sweep) and open requests no check has evaluated for a while (their check chain
ended, typically its retries ran out during a long node outage: the ``payment_checks`` task).

Throttle: ``requeued_at`` records the last re-send. The next one waits as long as the request had
been stuck at the last one (``requeued_at - since``), at least ``min_gap_s`` and at most
``max_gap_s``, so while the node is down the gaps double (1, 2, 4, … min, then every ``max_gap_s``)
instead of piling a new message (with its own retries) onto the queue every 30 s. The caller
stamps and sends in one transaction: a send that fails leaves the stamp unwritten.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from satworks.payments.status import PaymentStatus

_DUE = (
    "(requeued_at IS NULL OR requeued_at < now() - least(make_interval(secs => :max_gap_s),"
    " greatest(make_interval(secs => :min_gap_s), requeued_at - {since})))"
)

STRANDED_CREATING = (
    "UPDATE payment_requests SET requeued_at = now() WHERE id IN ("  # noqa: S608 - enum value, no input
    f"SELECT id FROM payment_requests WHERE status = '{PaymentStatus.CREATING.value}' AND created_at < :older_than"
    f" AND {_DUE.format(since='created_at')}"
    " ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id, method"
)

_SINCE = "coalesce(checked_at, created_at)"
STALE_OPEN = (
    "UPDATE payment_requests SET requeued_at = now() WHERE id IN ("  # noqa: S608 - enum values, no input
    "SELECT id FROM payment_requests"
    f" WHERE status IN ('{PaymentStatus.NEW.value}', '{PaymentStatus.PROCESSING.value}') AND address IS NOT NULL"
    f" AND ({_SINCE} < :stale_before"
    f" OR (status = '{PaymentStatus.NEW.value}' AND expires_at < :expired_before AND {_SINCE} < expires_at))"
    f" AND {_DUE.format(since=_SINCE)}"
    f" ORDER BY {_SINCE} LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id, checks"
)
"""Open requests not evaluated since ``stale_before``, or past expiry (by ``expired_before``) and not
evaluated since: their check chain is sent again from where it stopped (``checks``)."""


async def stranded_creating(
    conn: AsyncConnection, older_than: datetime, limit: int, *, min_gap_s: float, max_gap_s: float
) -> list[tuple[uuid.UUID, str]]:
    """Stamp and return ``(id, method)`` of requests ``creating`` since before ``older_than`` whose re-send
    is due (the method says which job makes them: an address or an invoice)."""
    params = {"older_than": older_than, "limit": limit, "min_gap_s": min_gap_s, "max_gap_s": max_gap_s}
    return [(row.id, row.method) for row in await conn.execute(text(STRANDED_CREATING), params)]


def stale_open(
    conn: Connection,
    *,
    stale_before: datetime,
    expired_before: datetime,
    limit: int,
    min_gap_s: float,
    max_gap_s: float,
) -> list[tuple[uuid.UUID, int]]:
    """Stamp and return ``(id, checks)`` of open requests whose check chain seems to have ended."""
    params = {
        "stale_before": stale_before,
        "expired_before": expired_before,
        "limit": limit,
        "min_gap_s": min_gap_s,
        "max_gap_s": max_gap_s,
    }
    return [(row.id, row.checks) for row in conn.execute(text(STALE_OPEN), params)]
