"""/v1/draws: provably fair raffle draws (docs/draws.md). The intake records; jobs ask the node and draw.

A draw's body may be far larger than other requests (``SATWORKS_DRAW_MAX_BODY_BYTES``, a million
entries); it is read only after the key is checked, and prepared off the event loop.
"""

from __future__ import annotations

import asyncio
import gzip

from aiohttp import web

from satworks.db import draws as draws_db
from satworks.db.draws import DrawRecord
from satworks.draws import DrawProof
from satworks.draws.request import DrawIn
from satworks.draws.status import DrawStatus
from satworks.errors import Conflict, NotFound, UnsupportedMediaType
from satworks.http import context as ctx
from satworks.http.draw_schemas import DrawList, DrawListQuery, DrawOut
from satworks.http.pagination import decode_cursor, next_cursor
from satworks.http.requests import accepted, json_response, path_uuid, raw_body, validate
from satworks.http.route import Route
from satworks.intake import idempotency


async def create_draw(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    big = request.clone(client_max_size=settings.draw_max_body_bytes)
    raw = await raw_body(big, max_bytes=settings.draw_max_body_bytes)
    draw, replayed = await request.app[ctx.INTAKE].draws.submit(
        app.app_id, raw, request.headers.get(idempotency.HEADER)
    )
    return accepted(_document(request, draw), f"/v1/draws/{draw.id}", replayed=replayed)


async def get_draw(request: web.Request) -> web.Response:
    return json_response(_document(request, await _own_draw(request)))


async def list_draws(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    query = validate(DrawListQuery, dict(request.query), what="query")
    page = await draws_db.listing(
        request.app[ctx.ENGINE],
        app.app_id,
        raffle_id=query.raffle_id,
        status=query.status,
        before_seq=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    return json_response(DrawList(items=[_document(request, d) for d in page.items], next_cursor=next_cursor(page)))


async def get_proof(request: web.Request) -> web.Response:
    draw = await _own_draw(request)
    return await proof_response(request, draw, filename=f"draw-{draw.id}-proof.json")


async def proof_response(request: web.Request, draw: DrawRecord, *, filename: str) -> web.Response:
    """The stored proof: as stored (gzip) to clients that take it, else decompressed off the loop."""
    if draw.status != DrawStatus.COMPLETED:
        raise Conflict(
            f"the draw is {draw.status}: its proof exists once it is completed", details={"status": str(draw.status)}
        )
    stored = await draws_db.proof_gz(request.app[ctx.ENGINE], draw.id)
    if stored is None:
        raise NotFound("no proof for this draw")
    headers = {"Content-Disposition": f'inline; filename="{filename}"', "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=stored, content_type="application/json", headers=headers)
    body = await asyncio.to_thread(gzip.decompress, stored)
    return web.Response(body=body, content_type="application/json", headers=headers)


def public_base(request: web.Request) -> str:
    """Where players reach this service: ``SATWORKS_PUBLIC_BASE_URL``, else the origin of this request."""
    configured = request.app[ctx.SETTINGS].public_base_url
    return configured.rstrip("/") if configured else str(request.url.origin())


async def _own_draw(request: web.Request) -> DrawRecord:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    draw = await draws_db.get(request.app[ctx.ENGINE], app.app_id, path_uuid(request, "id", what="draw"))
    if draw is None:
        raise NotFound("no such draw")
    return draw


def _document(request: web.Request, draw: DrawRecord) -> DrawOut:
    return DrawOut.from_record(draw, public_base=public_base(request))


_ERRORS = (401, 403, 404, 429, 503)
ROUTES = [
    Route(
        "POST",
        "/v1/draws",
        create_draw,
        "Commit a raffle draw to its entries and a future Bitcoin block",
        DrawOut,
        status=202,
        body=DrawIn,
        scope="jobs",
        errors=(*_ERRORS, 400, 409, 413, 415, 422),
    ),
    Route(
        "GET",
        "/v1/draws",
        list_draws,
        "List draws, newest first",
        DrawList,
        query=DrawListQuery,
        scope="jobs",
        errors=(*_ERRORS, 422),
    ),
    Route("GET", "/v1/draws/{id}", get_draw, "Read a draw", DrawOut, scope="jobs", errors=_ERRORS),
    Route(
        "GET",
        "/v1/draws/{id}/proof",
        get_proof,
        'Download a completed draw\'s proof (docs/draws.md, "The proof document")',
        DrawProof,
        scope="jobs",
        errors=(*_ERRORS, 409),
    ),
]
