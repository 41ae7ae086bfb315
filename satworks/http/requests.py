"""Reading and validating request input; every failure becomes one of our request errors."""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from satworks.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from satworks.http.errors import validation_details
from satworks.intake import idempotency

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request, *, max_bytes: int) -> Any:
    """The parsed JSON body: 415 unless JSON, 413 past ``max_bytes``, 400 when it does not parse."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    return parse_json(await raw_body(request, max_bytes=max_bytes))


async def raw_body(request: web.Request, *, max_bytes: int) -> bytes:
    """The body's bytes (signatures are computed over them); 413 past ``max_bytes``."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("request body too large", details={"max_bytes": max_bytes})
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge("request body too large", details={"max_bytes": max_bytes}) from exc
    except ConnectionResetError as exc:  # the client went away mid-body: its request, not our error
        raise BadRequest("the connection closed before the body was complete") from exc


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed JSON body") from exc


def validate(model: type[M], data: Any, *, what: str, loc: tuple[str | int, ...] = ()) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(f"invalid {what}", details=validation_details(exc, prefix=loc)) from exc


def path_uuid(request: web.Request, name: str, *, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound(f"no such {what}") from exc


def json_response(model: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # The serializer's bytes are the body as they are (a str body would go through aiohttp's payload registry).
    body = model.__pydantic_serializer__.to_json(model)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def idempotency_key(request: web.Request, body_key: str | None) -> str | None:
    """The request's idempotency key, from the ``Idempotency-Key`` header and the body (the rule:
    ``satworks.intake.idempotency``)."""
    return idempotency.resolve(request.headers.get(idempotency.HEADER), body_key)


def accepted(document: BaseModel, location: str, *, replayed: bool) -> web.Response:
    """202 for something created (or replayed: ``Idempotent-Replayed: true``), with its ``Location``."""
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(document, status=202, headers=headers)
