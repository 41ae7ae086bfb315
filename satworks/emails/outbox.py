"""Turning an email request (or a payment's receipt, a draw's winner, a daily report) into the outbox row.

The emails satworks writes itself have an idempotency key of their own under the app (``receipt_key``,
``winner_key``, ``report_key``): their row is inserted in the transaction that records what they tell
(``db.emails.insert_if_new``), so however often that is seen, one email is made.

Content is rendered when the email is accepted, so a bad template context is the caller's 422 and
the row holds exactly what goes out. The Message-ID comes from the row's id: every send of the row
carries the same one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr

from satworks.db.draw_states import WinnerNotice
from satworks.db.draws import public_path
from satworks.db.emails import NewEmail, Sendable
from satworks.db.outbox import ReceiptDue
from satworks.emails.addresses import normalize_address
from satworks.emails.message import build_message, message_id, sender_domain
from satworks.emails.request import EmailIn
from satworks.emails.templates import EmailTemplates, RenderedEmail
from satworks.errors import InvalidEmailAddress, TemplateError, ValidationFailed
from satworks.settings import Settings

RECEIPT_TEMPLATE = "payment_settled"
WINNER_TEMPLATE = "draw_won"
REPORT_TEMPLATE = "report_ready"


class Composer:
    """Renders and addresses outbox emails with the settings' sender and Message-ID domain."""

    def __init__(self, settings: Settings, templates: EmailTemplates | None = None) -> None:
        self.templates = templates or EmailTemplates()
        self.sender = settings.email_from
        self.domain = settings.email_message_id_domain or sender_domain(settings.email_from)
        self.max_recipients = settings.email_max_recipients
        self.public_base = public_base(settings)

    def compose(self, app_id: uuid.UUID, spec: EmailIn, idempotency_key: str | None) -> NewEmail:
        """The row for ``spec``; raises ``ValidationFailed`` (too many recipients, a template or a context
        it cannot render, U+0000)."""
        if len(spec.to) > self.max_recipients:
            raise ValidationFailed(f"at most {self.max_recipients} recipients per email", details=[{"loc": ["to"]}])
        if spec.template is not None:
            try:
                content = self.templates.render(spec.template, spec.context or {})
            except TemplateError as exc:
                raise ValidationFailed(exc.message, details=exc.details) from exc
        else:
            assert spec.subject is not None and spec.text is not None
            content = RenderedEmail(subject=" ".join(spec.subject.split()), text=spec.text, html=spec.html)
        body = spec.model_dump(mode="json", exclude={"idempotency_key"})
        canonical = json.dumps(body, sort_keys=True)
        if "\\u0000" in canonical:
            raise ValidationFailed("the email must not contain U+0000")
        email_id = uuid.uuid4()
        return NewEmail(
            id=email_id,
            app_id=app_id,
            to_addrs=list(dict.fromkeys(spec.to)),
            subject=content.subject,
            text_body=content.text,
            html_body=content.html,
            template=spec.template,
            context=spec.context,
            message_id=message_id(str(email_id), self.domain),
            idempotency_key=idempotency_key,
            request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        )

    def receipt(self, due: ReceiptDue) -> NewEmail | None:
        """The receipt of a settled payment; None when its stored address no longer validates."""
        try:
            to = normalize_address(due.receipt_email)
        except InvalidEmailAddress:
            return None
        name = parseaddr(to)[0] or "there"
        spec = EmailIn(
            to=[to],
            template=RECEIPT_TEMPLATE,
            context={
                "customer_name": name,
                "amount_sat": due.received_sat,
                "payment_id": str(due.payment_id),
                "memo": due.memo,
            },
        )
        return self.compose(due.app_id, spec, receipt_key(due.payment_id))

    def winner(self, notice: WinnerNotice) -> NewEmail | None:
        """The ``draw_won`` email of one winner; None when its stored address no longer validates (or
        the email cannot be made)."""
        try:
            to = normalize_address(notice.email)
        except InvalidEmailAddress:
            return None
        spec = EmailIn(
            to=[to],
            template=WINNER_TEMPLATE,
            context={
                "raffle_id": notice.raffle_id,
                "draw_id": str(notice.draw_id),
                "entry_id": notice.entry_id,
                "ticket": notice.ticket,
                "verify_url": self.public_base + public_path(notice.public_token),
            },
        )
        return self._own(notice.app_id, spec, winner_key(notice.draw_id, notice.entry_id))

    def report(self, app_id: uuid.UUID, address: str, ready: ReportReady) -> NewEmail | None:
        """The ``report_ready`` email of a daily report; None when the app's address no longer validates
        (or the email cannot be made)."""
        try:
            to = normalize_address(address)
        except InvalidEmailAddress:
            return None
        spec = EmailIn(
            to=[to],
            template=REPORT_TEMPLATE,
            context={
                "report_name": ready.name,
                "period": ready.period,
                "download_url": self.public_base + ready.download_path,
            },
        )
        return self._own(app_id, spec, report_key(ready.report_id))

    def _own(self, app_id: uuid.UUID, spec: EmailIn, key: str) -> NewEmail | None:
        """An email satworks writes in the transaction of what it tells: one it cannot render is
        skipped (None), never an error that would undo the draw's result or the report."""
        try:
            return self.compose(app_id, spec, key)
        except ValidationFailed:
            return None

    def message(self, sendable: Sendable) -> EmailMessage:
        content = RenderedEmail(sendable.subject, sendable.text_body, sendable.html_body)
        return build_message(content, sender=self.sender, to=sendable.to_addrs, message_id=sendable.message_id)


@dataclass(frozen=True)
class ReportReady:
    """What a report email says: which report, over which period, and where to download it."""

    report_id: uuid.UUID
    name: str
    period: str
    download_path: str


def public_base(settings: Settings) -> str:
    """Where the links in emails point: ``SATWORKS_PUBLIC_BASE_URL``, else the web process's own address."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = f"[{settings.http_host}]" if ":" in settings.http_host else settings.http_host
    return f"http://{host}:{settings.http_port}"


def winner_key(draw_id: uuid.UUID, entry_id: str) -> str:
    """One ``draw_won`` email per winning entry of a draw, however often its result is stored."""
    return f"satworks:draw-won:{draw_id}:{hashlib.sha256(entry_id.encode()).hexdigest()[:32]}"


def report_key(report_id: uuid.UUID) -> str:
    """One ``report_ready`` email per report, however often its job runs."""
    return f"satworks:report:{report_id}"


def receipt_key(payment_id: uuid.UUID) -> str:
    """The receipt's idempotency key: one receipt per payment, however often its settlement is seen."""
    return f"satworks:receipt:{payment_id}"
