"""The email request accepted by ``POST /v1/emails``: a template and its context, or the content itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from satworks.emails.addresses import EmailAddress

MAX_BODY_CHARS = 500_000


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[EmailAddress] = Field(min_length=1, max_length=1000, description="Recipients (`Name <addr>` allowed).")
    template: str | None = Field(
        None, min_length=1, max_length=64, description="`payment_settled`, `draw_won`, `report_ready`, `generic`."
    )
    context: dict[str, Any] | None = Field(None, description="The template's variables; every one it names.")
    subject: str | None = Field(None, min_length=1, max_length=998, description="Without a template.")
    text: str | None = Field(None, min_length=1, max_length=MAX_BODY_CHARS, description="The plain-text part.")
    html: str | None = Field(None, min_length=1, max_length=MAX_BODY_CHARS, description="An optional HTML part.")
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _template_or_content(self) -> EmailIn:
        if self.template is not None:
            if self.subject is not None or self.text is not None or self.html is not None:
                raise ValueError("give a template and its context, or subject and text (and html), not both")
        elif self.subject is None or self.text is None:
            raise ValueError("give a template and its context, or subject and text")
        elif self.context is not None:
            raise ValueError("context goes with a template")
        return self
