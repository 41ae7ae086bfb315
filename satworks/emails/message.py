"""The ``EmailMessage`` sent for an outbox row: text plus optional HTML alternative, stable Message-ID."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from satworks import clock
from satworks.emails.templates import RenderedEmail
from satworks.errors import InvalidPayload


def message_id(email_id: str, domain: str) -> str:
    """``<email_id@domain>``: the same row always gets the same id, so a resent copy is recognisable."""
    if not email_id or any(c in email_id for c in "<>@ \r\n") or not domain or any(c in domain for c in "<>@ \r\n"):
        raise InvalidPayload("a Message-ID needs a plain id and domain", details={"email_id": email_id})
    return f"<{email_id}@{domain}>"


def sender_domain(sender: str) -> str:
    """The domain of ``sender`` (``"Shop <noreply@shop.example>"`` → ``shop.example``), for Message-IDs."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not domain:
        raise InvalidPayload(f"no domain in the sender address {sender!r}")
    return domain.lower()


def build_message(
    content: RenderedEmail,
    *,
    sender: str,
    to: Sequence[str],
    message_id: str,
    date: datetime | None = None,
    reply_to: str | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message (``text/plain`` alone when there is no HTML).

    ``sender`` and ``to`` are already-validated addresses (``emails.addresses``); ``date`` defaults to now.
    """
    if not to:
        raise InvalidPayload("an email needs at least one recipient")
    message = EmailMessage()
    message["Subject"] = " ".join(content.subject.split())  # one line: no header injection
    message["From"] = sender
    message["To"] = ", ".join(to)
    if reply_to:
        message["Reply-To"] = reply_to
    message["Date"] = format_datetime(date or clock.utcnow())
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a robot
    message.set_content(content.text)
    if content.html is not None:
        message.add_alternative(content.html, subtype="html")
    return message
