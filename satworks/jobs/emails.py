"""``emails.send(email_id)``: one SMTP session for one outbox row, under the cap of simultaneous sessions.

The job takes a session slot (``integrations/smtp/sessions.py``), claims the row (a lease on an open,
due row: a row marked ``sent`` is never claimed again), sends, and records the outcome under its
lease: ``sent`` with the server's reply, ``retrying`` after a 4xx, a timeout or a refused connection
(exponential backoff with full jitter inside ``SATWORKS_EMAIL_RETRY_WINDOW_S``, then ``dead``), or
``failed`` at once after a 5xx. The next attempt's message is enqueued before the outcome commits.

The remaining crash window: a worker that dies after the server accepted DATA and before ``sent``
commits leaves the row claimed; once its lease ends the email is sent once more, with the same
Message-ID (receivers and relays can recognise the copy).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import dramatiq
from sqlalchemy import Engine

from satworks import clock
from satworks.broker.messages import Delayed, internal_message
from satworks.db import emails as store
from satworks.db.emails import Pending, Sendable, SendOutcome
from satworks.db.engine import db_errors
from satworks.emails.outbox import Composer
from satworks.emails.status import EmailStatus
from satworks.errors import SmtpRejected, SmtpTempFailure
from satworks.integrations.smtp.client import SmtpConfig
from satworks.integrations.smtp.client import send as smtp_send
from satworks.integrations.smtp.sessions import SessionCap
from satworks.metrics.notify import NotifyMetrics
from satworks.settings import Settings
from satworks.webhooks.schedule import RetrySchedule

log = logging.getLogger(__name__)

SEND = "emails.send"
QUEUE = "bulk"


@dataclass(frozen=True)
class EmailResources:
    settings: Settings
    engine: Engine
    smtp: SmtpConfig
    cap: SessionCap
    composer: Composer
    schedule: RetrySchedule
    enqueue: Callable[[Sequence[Delayed]], None]  # raises BrokerUnavailable
    metrics: NotifyMetrics


def send_message(email_id: uuid.UUID, prefix: str) -> dramatiq.Message[object]:
    return internal_message(SEND, (str(email_id),), prefix, QUEUE)


def lease_s(settings: Settings) -> float:
    """A send's lease: connecting, then a handful of commands each under the command timeout."""
    return settings.smtp_connect_timeout_s + 8 * settings.smtp_timeout_s + 30


def email_schedule(settings: Settings) -> RetrySchedule:
    return RetrySchedule(settings.email_retry_min_ms, settings.email_retry_max_ms, settings.email_retry_window_s * 1000)


def send(res: EmailResources, email_id: str) -> None:
    eid = uuid.UUID(email_id)
    with db_errors(), res.engine.connect() as conn:
        state = store.peek(conn, eid)
    if state is None or not state.due:  # sent, failed, not due yet (a stale copy), or being sent
        _wait_for(state)
        return
    with res.cap.session() as acquired:
        if not acquired:  # every slot busy: wait in the broker, not on a thread
            raise dramatiq.Retry(delay=random.randint(500, 2_000))
        with db_errors(), res.engine.begin() as conn:
            claimed = store.claim(conn, eid, lease_s=lease_s(res.settings))
        if not isinstance(claimed, Sendable):
            _wait_for(claimed)
            return
        outcome, delay_ms = _send(res, claimed)
    follow_up = [(send_message(eid, res.settings.queue_prefix), delay_ms)] if delay_ms is not None else []
    with db_errors(), res.engine.begin() as conn:
        res.enqueue(follow_up)  # before the commit: no retry is left without its message
        written = store.record(conn, claimed, outcome)
    if written:
        res.metrics.emails.labels(outcome.status.value).inc()
        log.info(
            "email attempt recorded",
            extra={"action": "email_attempt", "email_id": email_id, "status": outcome.status.value},
        )
    else:
        log.warning("email send outlived its lease", extra={"action": "email_lease_lost", "email_id": email_id})


def _wait_for(state: Pending | None) -> None:
    """Retry when another send holds the email (or held it and died): after its lease; else nothing to do."""
    now = clock.utcnow()
    if state is not None and state.lease_until is not None and state.lease_until > now:
        wait_ms = int((state.lease_until - now).total_seconds() * 1000)
        raise dramatiq.Retry(delay=wait_ms + random.randint(100, 1_000))


def _send(res: EmailResources, claimed: Sendable) -> tuple[SendOutcome, int | None]:
    message = res.composer.message(claimed)
    try:
        receipt = smtp_send(res.smtp, message)
    except SmtpTempFailure as exc:
        elapsed_ms = int((clock.utcnow() - claimed.first_attempt_at).total_seconds() * 1000)
        delay_ms = res.schedule.delay_ms(claimed.attempts - 1, elapsed_ms)
        status = EmailStatus.DEAD if delay_ms is None else EmailStatus.RETRYING
        next_at = None if delay_ms is None else clock.utcnow() + timedelta(milliseconds=delay_ms)
        return SendOutcome(status, exc.smtp_code, exc.smtp_reply, exc.message[:2000], next_attempt_at=next_at), delay_ms
    except SmtpRejected as exc:
        return SendOutcome(EmailStatus.FAILED, exc.smtp_code, exc.smtp_reply, exc.message[:2000]), None
    refused = {addr: {"code": code, "reply": text} for addr, (code, text) in receipt.refused.items()} or None
    return SendOutcome(EmailStatus.SENT, receipt.smtp_code, receipt.smtp_reply, refused=refused), None
