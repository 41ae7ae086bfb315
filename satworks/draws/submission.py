"""A draw request's body turned into what is stored: validated, canonical, committed, packed.

``prepare_draw`` is pure (bytes in, ``PreparedDraw`` out, no I/O), so the intake can run it in another
process for large bodies: parsing and sorting a million entries are long C calls that hold the GIL,
which a thread would not keep off the event loop. It raises ``BadRequest`` (not JSON) or
``ValidationFailed``/``InvalidDraw`` (422) naming each problem.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson
from pydantic import ValidationError

from satworks.draws.beacon import Beacon, BitcoinNetwork
from satworks.draws.commitment import ALGORITHM, commitment, tickets_be
from satworks.draws.entries import MAX_PROBLEMS, DrawLimits, InvalidDraw, canonical_entries, validate_draw_id
from satworks.draws.packed import pack_entries
from satworks.draws.request import EMAIL_PATTERN, MAX_EMAIL_LENGTH, DrawFields
from satworks.errors import BadRequest, ValidationFailed

_EMAIL = re.compile(EMAIL_PATTERN)
_MISSING = object()


@dataclass(frozen=True)
class DrawRules:
    """What the operator allows (from settings) and the network the service watches."""

    limits: DrawLimits
    network: BitcoinNetwork
    default_confirmations: int
    min_confirmations: int


@dataclass(frozen=True)
class PreparedDraw:
    """A draw ready to insert. ``packed_entries``: ``packed.pack_entries``; ``packed_emails``: zlib of the
    JSON object ``{entry id: email}`` (only with ``notify``, else None)."""

    draw_id: str
    raffle_id: str
    k: int
    beacon: Beacon
    confirmations: int
    metadata: dict[str, Any]
    notify: bool
    idempotency_key: str | None
    entries_count: int
    total_tickets: int
    commitment: str
    packed_entries: bytes
    packed_emails: bytes | None
    emails_count: int
    request_hash: str  # same body (entries in any order) -> same hash; the draw id is not in it


def prepare_draw(raw: bytes, *, draw_id: str, rules: DrawRules) -> PreparedDraw:
    """Validate a ``POST /v1/draws`` body, freeze its entries and compute the commitment."""
    validate_draw_id(draw_id)
    document = _parse(raw)
    if not isinstance(document, dict):
        raise ValidationFailed("invalid draw request", details=[{"loc": [], "msg": "must be a JSON object"}])
    entries = document.pop("entries", _MISSING)
    try:
        fields = DrawFields.model_validate(document)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ValidationFailed("invalid draw request", details=details) from exc
    if entries is _MISSING or not isinstance(entries, list):
        msg = "Field required" if entries is _MISSING else "must be a list"
        raise ValidationFailed("invalid draw request", details=[{"loc": ["entries"], "msg": msg, "type": "invalid"}])
    beacon = _beacon(fields, rules)
    confirmations = _confirmations(fields, rules)
    ids, tickets, emails = entry_columns(entries)
    del entries
    canonical = canonical_entries(
        zip(ids, tickets, strict=True), k=fields.winners, limits=rules.limits, k_field="winners"
    )
    contacts = dict(zip(ids, emails, strict=True)) if emails is not None else {}
    contacts = {entry_id: email for entry_id, email in contacts.items() if email is not None}
    del ids, tickets, emails
    stated = fields.model_dump(mode="json", exclude={"idempotency_key"})
    stated["confirmations"] = confirmations
    digest = hashlib.sha256(json.dumps(stated, sort_keys=True).encode())
    digest.update(("\x00".join(canonical.ids) + "\x00").encode())
    digest.update(tickets_be(canonical.tickets))
    digest.update(json.dumps(contacts, sort_keys=True).encode())
    keep_emails = fields.notify and bool(contacts)
    return PreparedDraw(
        draw_id=draw_id,
        raffle_id=fields.raffle_id,
        k=fields.winners,
        beacon=beacon,
        confirmations=confirmations,
        metadata=fields.metadata,
        notify=fields.notify,
        idempotency_key=fields.idempotency_key,
        entries_count=len(canonical),
        total_tickets=canonical.total_tickets,
        commitment=commitment(canonical, k=fields.winners, beacon=beacon, draw_id=draw_id),
        packed_entries=pack_entries(canonical),
        packed_emails=zlib.compress(json.dumps(contacts).encode(), 1) if keep_emails else None,
        emails_count=len(contacts) if keep_emails else 0,
        request_hash=digest.hexdigest(),
    )


def entry_columns(entries: list[Any]) -> tuple[list[Any], list[Any], list[Any] | None]:
    """``(ids, tickets, emails)`` of JSON entry objects (emails None when no entry has one).

    Checks the objects' shape in whole-list passes: every entry a JSON object with ``id`` and
    ``tickets``, optionally ``email``, nothing else. The values' rules are ``canonical_entries``' and
    ``EMAIL_PATTERN``. Raises ``InvalidDraw`` naming each bad entry.
    """
    n = len(entries)
    if n and set(map(type, entries)) == {dict}:
        ids = list(map(dict.get, entries, repeat("id"), repeat(_MISSING)))
        tickets = list(map(dict.get, entries, repeat("tickets"), repeat(_MISSING)))
        with_email = sum(map(dict.__contains__, entries, repeat("email")))
        # Each entry has id and tickets (and email when counted), so equal sums mean no other keys.
        shaped = _MISSING not in ids and _MISSING not in tickets and sum(map(len, entries)) == 2 * n + with_email
        if shaped:
            if not with_email:
                return ids, tickets, None
            emails = list(map(dict.get, entries, repeat("email")))
            if _emails_ok(emails):
                return ids, tickets, emails
    raise InvalidDraw(_entry_problems(entries) or [{"loc": ["entries"], "msg": "invalid entries", "type": "invalid"}])


def _emails_ok(emails: list[Any]) -> bool:
    present = [e for e in emails if e is not None]
    if not present:
        return True
    if set(map(type, present)) != {str} or max(map(len, present)) > MAX_EMAIL_LENGTH:
        return False
    return all(map(_EMAIL.match, present))


def _entry_problems(entries: list[Any]) -> list[dict[str, Any]]:
    """Each entry's shape problems, one by one (only once the whole-list checks found something)."""
    out: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        if len(out) > MAX_PROBLEMS * 50:  # the message counts them; nobody reads a million
            break
        if type(entry) is not dict:
            out.append({"loc": ["entries", index], "msg": "must be an object", "type": "dict_type"})
            continue
        for name in ("id", "tickets"):
            if name not in entry:
                out.append({"loc": ["entries", index, name], "msg": "Field required", "type": "missing"})
        out.extend(
            {"loc": ["entries", index, name], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
            for name in entry
            if name not in ("id", "tickets", "email")
        )
        email = entry.get("email")
        if email is not None and not (
            type(email) is str and len(email) <= MAX_EMAIL_LENGTH and _EMAIL.match(email) is not None
        ):
            out.append(
                {
                    "loc": ["entries", index, "email"],
                    "msg": f"must be an email address of at most {MAX_EMAIL_LENGTH} characters",
                    "type": "invalid",
                }
            )
    return out


def _beacon(fields: DrawFields, rules: DrawRules) -> Beacon:
    given = fields.beacon.network
    if given is not None and given != rules.network:
        raise ValidationFailed(
            f"this service draws on {rules.network}, not {given}",
            details=[{"loc": ["beacon", "network"], "msg": f"must be {rules.network}", "type": "invalid"}],
        )
    return Beacon(network=rules.network, height=fields.beacon.height)


def _confirmations(fields: DrawFields, rules: DrawRules) -> int:
    wanted = fields.confirmations if fields.confirmations is not None else rules.default_confirmations
    if wanted < rules.min_confirmations:
        raise ValidationFailed(
            f"confirmations must be at least {rules.min_confirmations} on {rules.network}",
            details=[{"loc": ["confirmations"], "msg": f"at least {rules.min_confirmations}", "type": "too_small"}],
        )
    return wanted


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses what Python's parser reads (lone surrogates, which the entry rules then name):
    # only bodies that neither accepts are malformed.
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed JSON body") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


__all__ = ["ALGORITHM", "DrawRules", "PreparedDraw", "entry_columns", "prepare_draw"]
