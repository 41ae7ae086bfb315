"""Turning an email request (or a payment's receipt) into the outbox row that will be sent.

Content is rendered when the email is accepted, so a bad template context is the caller's 422 and
the row holds exactly what goes out. The Message-ID comes from the row's id: every send of the row
carries the same one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from email.message import EmailMessage
from email.utils import parseaddr

from satworks.db.emails import NewEmail, Sendable
from satworks.db.outbox import ReceiptDue
from satworks.emails.addresses import normalize_address
from satworks.emails.message import build_message, message_id, sender_domain
from satworks.emails.request import EmailIn
from satworks.emails.templates import EmailTemplates, RenderedEmail
from satworks.errors import InvalidEmailAddress, TemplateError, ValidationFailed
from satworks.settings import Settings

RECEIPT_TEMPLATE = "payment_settled"


class Composer:
    """Renders and addresses outbox emails with the settings' sender and Message-ID domain."""

    def __init__(self, settings: Settings, templates: EmailTemplates | None = None) -> None:
        self.templates = templates or EmailTemplates()
        self.sender = settings.email_from
        self.domain = settings.email_message_id_domain or sender_domain(settings.email_from)
        self.max_recipients = settings.email_max_recipients

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

    def message(self, sendable: Sendable) -> EmailMessage:
        content = RenderedEmail(sendable.subject, sendable.text_body, sendable.html_body)
        return build_message(content, sender=self.sender, to=sendable.to_addrs, message_id=sendable.message_id)


def receipt_key(payment_id: uuid.UUID) -> str:
    """The receipt's idempotency key: one receipt per payment, however often its settlement is seen."""
    return f"satworks:receipt:{payment_id}"
