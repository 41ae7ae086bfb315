"""Messages the development SMTP server received: the newest ``max_messages`` in memory, optionally .eml files."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from satworks import clock


@dataclass(frozen=True)
class StoredMessage:
    id: str
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    def parsed(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)

    def summary(self) -> dict[str, Any]:
        message = self.parsed()
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": message["Subject"],
            "message_id": message["Message-ID"],
            "size": len(self.raw),
        }

    def detail(self) -> dict[str, Any]:
        message = self.parsed()
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        return {
            **self.summary(),
            "headers": [[name, str(value)] for name, value in message.items()],
            "content_type": message.get_content_type(),
            "text": _lf(text.get_content()) if text is not None else None,
            "html": _lf(html.get_content()) if html is not None else None,
            "raw": self.raw.decode("utf-8", "replace"),
        }


class MessageStore:
    """Belongs to the server's event loop (no locking); ``maildir`` keeps every message as ``<id>.eml``."""

    def __init__(self, *, max_messages: int = 1000, maildir: Path | None = None) -> None:
        self._messages: deque[StoredMessage] = deque(maxlen=max_messages)
        self._ids = itertools.count(1)
        self.maildir = maildir
        if maildir is not None:
            maildir.mkdir(parents=True, exist_ok=True)

    def add(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> StoredMessage:
        stored = StoredMessage(str(next(self._ids)), clock.utcnow(), mail_from, tuple(rcpt_tos), raw)
        self._messages.append(stored)
        if self.maildir is not None:
            stamp = stored.received_at.strftime("%Y%m%dT%H%M%S")
            (self.maildir / f"{stamp}-{stored.id}.eml").write_bytes(raw)
        return stored

    def get(self, message_id: str) -> StoredMessage | None:
        return next((m for m in self._messages if m.id == message_id), None)

    def all(self) -> list[StoredMessage]:
        return list(self._messages)

    def clear(self) -> None:
        self._messages.clear()


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")
