"""Fanning app events out into webhook deliveries and receipts, and the sweep that guarantees it.

``dispatch`` runs when a transaction that wrote ``app_events`` commits (its NOTIFY wakes the worker
processes' ``OutboxListener``) and from every sweep: it turns every undispatched event, in event
order, into deliveries (``db.outbox``) and, for a settled payment that asked for one, a receipt
email; after the commit it enqueues one pump per endpoint that got deliveries and the receipts'
sends. A crash between the commit and those messages strands nothing for long: the sweep
(``notify.sweep``, scheduled by ``satworks scheduler``) dispatches again and re-sends the messages of
deliveries and emails that waited too long with nothing in flight (``jobs/notify_sweep.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from satworks import clock
from satworks.broker.messages import Delayed
from satworks.db import emails as emails_db
from satworks.db import outbox as db
from satworks.db.engine import db_errors
from satworks.emails.outbox import Composer
from satworks.jobs.emails import send_message
from satworks.jobs.webhooks import deliver_message, pump_message
from satworks.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500
STALLED_AFTER_S = 60.0  # a pending delivery, an overdue retry or an email waiting this long with nothing in flight
EMAIL_STALLED_AFTER_S = 300.0  # emails wait longer in a burst (the session cap): revive later


@dataclass(frozen=True)
class OutboxResources:
    settings: Settings
    engine: Engine
    composer: Composer
    enqueue: Callable[[Sequence[Delayed]], None]  # raises BrokerUnavailable


@dataclass(frozen=True)
class Dispatched:
    events: int = 0
    endpoints: int = 0
    receipts: int = 0


def dispatch(res: OutboxResources) -> Dispatched:
    """Fan out every undispatched event, ``BATCH`` at a time; returns what it did."""
    prefix = res.settings.queue_prefix
    events = endpoints = receipts = 0
    while True:
        with db_errors(), res.engine.begin() as conn:
            db.lock_dispatch(conn)
            batch = db.undispatched(conn, BATCH)
            if not batch:
                break
            ids = [e.id for e in batch]
            touched = db.fan_out(conn, ids)
            made = [
                email_id
                for due in db.receipts_due(conn, batch)
                if (email := res.composer.receipt(due)) is not None
                and (email_id := emails_db.insert_if_new(conn, email)) is not None
            ]
            db.mark_dispatched(conn, ids)
        res.enqueue(
            [(pump_message(e, prefix), None) for e in sorted(touched)] + [(send_message(m, prefix), None) for m in made]
        )
        events, endpoints, receipts = events + len(batch), endpoints + len(touched), receipts + len(made)
        if len(batch) < BATCH:
            break
    return Dispatched(events, endpoints, receipts)


def sweep(res: OutboxResources) -> dict[str, int]:
    """Dispatch, then re-send the messages of work that waited too long with nothing in flight."""
    done = dispatch(res)
    now = clock.utcnow()
    prefix = res.settings.queue_prefix
    with db_errors(), res.engine.connect() as conn:
        endpoints = db.stalled_endpoints(conn, now - timedelta(seconds=STALLED_AFTER_S), BATCH)
        retries = db.stalled_retries(conn, now - timedelta(seconds=STALLED_AFTER_S), BATCH)
        emails = emails_db.stalled(conn, now - timedelta(seconds=EMAIL_STALLED_AFTER_S), BATCH)
    res.enqueue(
        [(pump_message(e, prefix), None) for e in endpoints]
        + [(deliver_message(d, prefix), None) for d in retries]
        + [(send_message(m, prefix), None) for m in emails]
    )
    revived = {"endpoints": len(endpoints), "retries": len(retries), "emails": len(emails)}
    if any(revived.values()):
        log.warning("notifications revived by the sweep", extra={"action": "notify_revived", **revived})
    return {"dispatched": done.events, **revived}
