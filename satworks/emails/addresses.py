"""Email addresses checked with ``email-validator``: syntax only unless DNS checks are asked for."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import formataddr
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

from satworks.errors import InvalidEmailAddress


def normalize_address(value: str, *, check_deliverability: bool = False) -> str:
    """``value`` normalized (domain lower-cased, IDNA), ``Name <addr>`` kept; raises ``InvalidEmailAddress``."""
    return normalize_addresses([value], check_deliverability=check_deliverability)[0]


def normalize_addresses(values: Sequence[str], *, check_deliverability: bool = False) -> list[str]:
    """All of ``values`` normalized, or one ``InvalidEmailAddress`` naming every bad address and why.

    ``check_deliverability`` asks DNS whether each domain takes mail (slow; off by default).
    """
    good: list[str] = []
    bad: list[dict[str, str]] = []
    for value in values:
        try:
            info = validate_email(value, check_deliverability=check_deliverability, allow_display_name=True)
        except EmailNotValidError as exc:
            bad.append({"address": value, "reason": str(exc)})
            continue
        good.append(formataddr((info.display_name, info.normalized)) if info.display_name else info.normalized)
    if bad:
        listing = "; ".join(f"{item['address']!r}: {item['reason']}" for item in bad)
        raise InvalidEmailAddress(f"invalid email address: {listing}", details=bad)
    return good


def _pydantic_address(value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidEmailAddress as exc:
        raise ValueError(exc.message) from exc


#: For request models: ``to: list[EmailAddress]`` gives a 422 naming the address.
EmailAddress = Annotated[str, AfterValidator(_pydantic_address)]
