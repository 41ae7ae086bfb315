"""The one place errors become HTTP answers: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from satworks import errors
from satworks.http.schemas import ErrorBody, ErrorOut
from satworks.jobs.submission import validation_details

__all__ = ["error_response", "errors_middleware", "validation_details"]

log = logging.getLogger(__name__)

STATUS: dict[type[errors.SatworksError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.ValidationFailed: 422,
    errors.RateLimited: 429,
    errors.DependencyUnavailable: 503,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body = ErrorOut(error=ErrorBody(code=code, message=message, details=details))
    return web.Response(status=status, body=body.model_dump_json(), content_type="application/json")


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
