"""/v1/audit (admin): the platform's append-only audit trail, newest first."""

from __future__ import annotations

from aiohttp import web

from satworks.db import audit as audit_db
from satworks.http import context as ctx
from satworks.http.pagination import decode_cursor, next_cursor
from satworks.http.requests import json_response, validate
from satworks.http.route import Route
from satworks.http.schemas import AuditList, AuditOut, AuditQuery


async def list_audit(request: web.Request) -> web.Response:
    await request.app[ctx.AUTH].authenticate(request, "admin")
    query = validate(AuditQuery, dict(request.query), what="query")
    page = await audit_db.listing(
        request.app[ctx.ENGINE],
        since=query.since,
        kind=query.kind,
        app_name=query.app,
        before_id=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    return json_response(AuditList(items=[AuditOut.from_entry(e) for e in page.items], next_cursor=next_cursor(page)))


ROUTES = [
    Route(
        "GET",
        "/v1/audit",
        list_audit,
        "The audit trail: keys, failed authentications, admin actions, payment state changes (admin)",
        AuditList,
        query=AuditQuery,
        scope="admin",
        errors=(401, 403, 429, 503, 422),
    ),
]
