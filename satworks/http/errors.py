"""The one place errors become HTTP answers: ``{"error": {"code", "message", "details"}}``.

``details`` has one shape, whatever raised the error: an object whose ``errors`` lists the problems
with the request's input as ``{"loc", "msg", "type"}`` (empty when the input is not at fault), plus
keys that depend on ``code``, e.g. ``dependency`` (503), ``retry_after_s`` (429), ``max_bytes`` (413),
``max_depth`` (400), ``job_id``/``payment_id`` (409), ``known_types`` (422). Errors raised with a list
of problems or with ``None`` are brought into that shape here, so raising code stays simple.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from satworks import errors
from satworks.jobs.submission import validation_details

__all__ = ["error_response", "errors_middleware", "validation_details"]

log = logging.getLogger(__name__)

STATUS: dict[type[errors.SatworksError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.RequestTimeout: 408,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.ValidationFailed: 422,
    errors.RateLimited: 429,
    errors.DependencyUnavailable: 503,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    """The one error shape (``schemas.ErrorOut``); built as a dict: details may hold any JSON-able value."""
    body = {"error": {"code": code, "message": message, "details": error_details(details, message, code)}}
    return web.Response(status=status, body=json.dumps(body, default=str), content_type="application/json")


def error_details(details: Any, message: str, code: str) -> dict[str, Any]:
    """``details`` as raised (``None``, a list of problems or an object) in the one documented shape."""
    if details is None:
        return {"errors": []}
    if isinstance(details, list):
        return {"errors": [_problem(p, message, code) for p in details]}
    if isinstance(details, dict):
        listed = details.get("errors")
        problems = [_problem(p, message, code) for p in listed] if isinstance(listed, list) else []
        return {"errors": problems, **{k: v for k, v in details.items() if k != "errors"}}
    return {"errors": [], "info": details}


def _problem(problem: Any, message: str, code: str) -> dict[str, Any]:
    """``{"loc": [...], "msg": ..., "type": ...}``, the parts missing from ``problem`` filled in."""
    if not isinstance(problem, dict):
        return {"loc": [], "msg": str(problem), "type": code}
    loc = problem.get("loc", [])
    return {
        **problem,
        "loc": list(loc) if isinstance(loc, list | tuple) else [loc],
        "msg": problem.get("msg") or message,
        "type": problem.get("type") or code,
    }


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.SatworksError as exc:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        if status == 500:
            log.exception("unmapped error", extra={"action": "http_unmapped_error"})
            return error_response(500, "internal_error", "internal error")
        response = error_response(status, exc.code, exc.message, exc.details)
        if isinstance(exc, errors.RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        elif isinstance(exc, errors.RequestTimeout | errors.ClientDisconnected):
            response.force_close()  # the rest of a slow body is not waited for
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = "request body too large" if exc.status == 413 else exc.reason
        response = error_response(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:  # the HTTP boundary: log it, answer without internals
        log.exception("unhandled error", extra={"action": "http_unhandled_error"})
        return error_response(500, "internal_error", "internal error")
