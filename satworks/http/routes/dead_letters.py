"""/v1/dead-letters (admin): jobs of every app that ended ``dead`` or ``failed``, and their requeue."""

from __future__ import annotations

from aiohttp import web

from satworks.db import dead_letters as dead_letters_db
from satworks.db.dead_letters import DeadLetterFilter
from satworks.http import context as ctx
from satworks.http.pagination import decode_cursor, next_cursor
from satworks.http.requests import json_body, json_response, path_uuid, validate
from satworks.http.route import Route
from satworks.http.schemas import (
    DeadLetterList,
    DeadLetterOut,
    DeadLetterQuery,
    JobOut,
    RequeueMatchingIn,
    RequeueMatchingOut,
)
from satworks.jobs.status import JobStatus


def _filter(request: web.Request, spec: DeadLetterQuery | RequeueMatchingIn) -> DeadLetterFilter:
    prefix = request.app[ctx.SETTINGS].queue_prefix
    return DeadLetterFilter(
        queue=prefix + spec.queue if spec.queue else None,
        job_type=spec.type,
        app_name=spec.app,
        status=JobStatus(spec.status) if spec.status else None,
    )


async def list_dead_letters(request: web.Request) -> web.Response:
    await request.app[ctx.AUTH].authenticate(request, "admin")
    query = validate(DeadLetterQuery, dict(request.query), what="query")
    page = await dead_letters_db.listing(
        request.app[ctx.ENGINE],
        _filter(request, query),
        before_seq=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    prefix = request.app[ctx.SETTINGS].queue_prefix
    items = [DeadLetterOut.from_record(letter, queue_prefix=prefix) for letter in page.items]
    return json_response(DeadLetterList(items=items, next_cursor=next_cursor(page)))


async def requeue_dead_letter(request: web.Request) -> web.Response:
    auth = request.app[ctx.AUTH]
    admin = await auth.authenticate(request, "admin")
    job_id = path_uuid(request, "id", what="job")
    job = await request.app[ctx.INTAKE].dead_letters.requeue(
        job_id, actor=admin.name, client_address=auth.client_address(request)
    )
    return json_response(JobOut.document(job, queue_prefix=request.app[ctx.SETTINGS].queue_prefix), status=202)


async def requeue_dead_letters(request: web.Request) -> web.Response:
    auth = request.app[ctx.AUTH]
    admin = await auth.authenticate(request, "admin")
    settings = request.app[ctx.SETTINGS]
    spec = validate(RequeueMatchingIn, await json_body(request, max_bytes=settings.max_body_bytes), what="requeue")
    which = _filter(request, spec)
    matched = await dead_letters_db.count(request.app[ctx.ENGINE], which)
    moved = []
    if not spec.dry_run and matched:
        moved = await request.app[ctx.INTAKE].dead_letters.requeue_matching(
            which, limit=spec.limit, actor=admin.name, client_address=auth.client_address(request)
        )
    out = RequeueMatchingOut(dry_run=spec.dry_run, matched=matched, requeued=len(moved), job_ids=[j.id for j in moved])
    return json_response(out)  # 200 either way: the answer is the outcome (counted, or requeued now)


_ERRORS = (401, 403, 429, 503)
ROUTES = [
    Route(
        "GET",
        "/v1/dead-letters",
        list_dead_letters,
        "List jobs that ended dead or failed, newest first (admin)",
        DeadLetterList,
        query=DeadLetterQuery,
        scope="admin",
        errors=(*_ERRORS, 422),
    ),
    Route(
        "POST",
        "/v1/dead-letters/requeue",
        requeue_dead_letters,
        "Requeue the dead letters matching a filter; dry_run (the default) only counts them (admin)",
        RequeueMatchingOut,
        body=RequeueMatchingIn,
        scope="admin",
        errors=(*_ERRORS, 400, 413, 415, 422),
    ),
    Route(
        "POST",
        "/v1/dead-letters/{id}/requeue",
        requeue_dead_letter,
        "Give a dead or failed job a new run: same id, attempts kept, audited (admin)",
        JobOut,
        status=202,
        scope="admin",
        errors=(*_ERRORS, 404, 409),
    ),
]
