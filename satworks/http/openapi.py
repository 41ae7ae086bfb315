"""OpenAPI 3.1 document generated from the route table and the pydantic models (never hand-written)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from satworks import __version__
from satworks.http.route import Route
from satworks.http.schemas import ErrorOut

REF = "#/components/schemas/{model}"
_REASONS = {
    400: "Malformed JSON, or nested too deeply",
    401: "Missing or invalid API key",
    403: "Key lacks the scope",
    404: "Not found",
    408: "The request body did not arrive in time",
    409: "Conflict",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Validation failed",
    429: "Rate limited (see Retry-After)",
    503: "A dependency is down",
}


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    """The document describing ``routes``; ``create_app`` builds it once per route table."""
    return _document(tuple(routes))


@functools.cache  # built once per process: generating every model's JSON schema takes tens of ms
def _document(routes: tuple[Route, ...]) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for route in routes:
        models.update(m for m in (route.body, route.response) if m is not None)
    _, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": {str(route.status): _content(route.response, route.content_type, route.summary)},
        }
        params = [
            {"name": n, "in": "path", "required": True, "schema": _path_schema(n)}
            for n in re.findall(r"{(\w+)}", route.path)
        ]
        if route.query is not None:
            schema = route.query.model_json_schema(ref_template=REF)
            for name, prop in schema["properties"].items():
                params.append({"name": name, "in": "query", "required": False, "schema": prop})
        if params:
            operation["parameters"] = params
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=route.body.__name__)}}},
            }
        if route.scope is not None:
            operation["security"] = [{"apiKey": []}]
            operation["description"] = f"Needs an API key with the `{route.scope}` scope."
        for status in route.errors:
            operation["responses"][str(status)] = _content(ErrorOut, "application/json", _REASONS[status])
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "satworks intake API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_schema(name: str) -> dict[str, Any]:
    """Ids are UUIDs; other path parameters (a draw's public token) are plain strings."""
    return {"type": "string", "format": "uuid"} if name == "id" else {"type": "string"}


def _content(model: type[BaseModel] | None, content_type: str, description: str) -> dict[str, Any]:
    if model is None:
        schema: dict[str, Any] = {"type": "object"} if content_type == "application/json" else {"type": "string"}
    else:
        schema = {"$ref": REF.format(model=model.__name__)}
    return {"description": description, "content": {content_type: {"schema": schema}}}
