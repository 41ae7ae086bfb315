"""Reading and validating request input; every failure becomes one of our request errors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeVar

import orjson
import pydantic_core
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from satworks import json_input
from satworks.errors import (
    BadRequest,
    ClientDisconnected,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
)
from satworks.http import context as ctx
from satworks.http.errors import validation_details
from satworks.intake import idempotency

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request, *, max_bytes: int) -> Any:
    """The parsed JSON body: 415 unless JSON, 413 past ``max_bytes``, 400 when it does not parse or
    nests deeper than ``SATWORKS_MAX_JSON_DEPTH``, 422 for text Postgres cannot store (``parse_json``)."""
    # The header as clients send it is the common case; any other spelling is parsed (parameters, case).
    if request.headers.get("Content-Type") != "application/json" and request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    raw = await raw_body(request, max_bytes=max_bytes)
    return parse_json(raw, max_depth=request.app[ctx.SETTINGS].max_json_depth)


async def raw_body(request: web.Request, *, max_bytes: int) -> bytes:
    """The body's bytes (signatures are computed over them): 413 past ``max_bytes``, 408 when it takes
    longer than ``SATWORKS_HTTP_BODY_TIMEOUT_S`` to arrive; ``ClientDisconnected`` when the client left."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("request body too large", details={"max_bytes": max_bytes})
    timeout_s = request.app[ctx.SETTINGS].http_body_timeout_s
    try:
        if request.content.is_eof():  # the whole body is here already (small bodies): no timer to arm
            return await request.read()
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge("request body too large", details={"max_bytes": max_bytes}) from exc
    except TimeoutError as exc:
        request.app[ctx.HTTP_METRICS].request_timeouts.inc()
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s", details={"timeout_s": timeout_s}
        ) from exc
    except (ConnectionError, RequestPayloadError) as exc:  # the client closed the connection mid-body
        raise ClientDisconnected("the client closed the connection before its body arrived") from exc


def parse_json(raw: bytes, *, max_depth: int = json_input.DEFAULT_MAX_DEPTH) -> Any:
    """``raw`` parsed: 400 when it is not JSON (``NaN`` and ``Infinity`` are not) or nests deeper than
    ``max_depth``; 422 naming the place of text Postgres cannot store (U+0000, lone surrogates)."""
    try:
        return json_input.parse(raw, max_depth=max_depth)
    except json_input.JsonRefused as exc:
        if exc.kind == "unstorable":
            problem = {"loc": list(exc.loc), "msg": exc.message, "type": "unstorable_text"}
            raise ValidationFailed(exc.message, details=[problem]) from exc
        if exc.kind == "too_deep":
            raise BadRequest(exc.message, details={"max_depth": max_depth}) from exc
        raise BadRequest(exc.message.replace("malformed JSON", "malformed JSON body", 1)) from exc


def query_params(request: web.Request) -> dict[str, str]:
    """The query parameters, for a query model; 422 for a value holding U+0000 (Postgres cannot take it)."""
    params = dict(request.query)
    for name, value in params.items():
        if "\x00" in value:
            raise ValidationFailed(
                f"{name} must not contain U+0000",
                details=[{"loc": [name], "msg": "must not contain U+0000", "type": "unstorable_text"}],
            )
    return params


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


def json_response(
    document: BaseModel | dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``document``: a model, or a dict of a model's fields with their values (``JobOut.document``)."""
    # Bytes are the body as they are (a str body would go through aiohttp's payload registry).
    if isinstance(document, BaseModel):
        body = document.__pydantic_serializer__.to_json(document)
    else:
        try:
            body = orjson.dumps(document, option=orjson.OPT_UTC_Z)  # datetimes as pydantic writes them
        except TypeError:  # what orjson does not take (an integer beyond 64 bits): pydantic's serialiser does
            body = pydantic_core.to_json(document)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def idempotency_key(request: web.Request, body_key: str | None) -> str | None:
    """The request's idempotency key, from the ``Idempotency-Key`` header and the body (the rule:
    ``satworks.intake.idempotency``)."""
    return idempotency.resolve(request.headers.get(idempotency.HEADER), body_key)


def accepted(document: BaseModel | dict[str, Any], location: str, *, replayed: bool) -> web.Response:
    """202 for something created (or replayed: ``Idempotent-Replayed: true``), with its ``Location``."""
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(document, status=202, headers=headers)
