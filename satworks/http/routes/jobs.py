"""/v1/jobs: create, read, list and cancel jobs. An app only ever sees its own jobs."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from satworks.db import jobs as q
from satworks.db.engine import db_errors
from satworks.db.schema import jobs as jobs_table
from satworks.errors import Conflict, NotFound, ValidationFailed
from satworks.http import context as ctx
from satworks.http.pagination import decode_cursor, split_page
from satworks.http.requests import json_body, json_response, path_uuid, validate
from satworks.http.routes import Route
from satworks.http.schemas import JobIn, JobList, JobListQuery, JobOut, job_document
from satworks.jobs.submission import job_row


async def create_job(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    spec = validate(JobIn, await json_body(request, max_bytes=settings.max_body_bytes), what="job request")
    row, delay_ms = job_row(
        spec,
        app_id=app.app_id,
        idempotency_key=_idempotency_key(request, spec),
        queue_prefix=settings.queue_prefix,
    )
    stored, replayed = await request.app[ctx.BATCHER].submit(row, delay_ms)
    document = job_document(_Row(stored), queue_prefix=settings.queue_prefix)
    headers = {"Location": f"/v1/jobs/{document.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(document, status=202, headers=headers)


async def get_job(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    job_id = path_uuid(request, "id", what="job")
    with db_errors():
        async with request.app[ctx.ENGINE].connect() as conn:
            row = (await conn.execute(q.get(app.app_id, job_id))).first()
    if row is None:
        raise NotFound("no such job")
    return json_response(job_document(row, queue_prefix=request.app[ctx.SETTINGS].queue_prefix))


async def list_jobs(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    query = validate(JobListQuery, dict(request.query), what="query")
    before = decode_cursor(query.cursor) if query.cursor else None
    with db_errors():
        async with request.app[ctx.ENGINE].connect() as conn:
            statement = q.listing(
                app.app_id, status=query.status, job_type=query.type, before_seq=before, limit=query.limit + 1
            ).add_columns(jobs_table.c.seq)
            rows = (await conn.execute(statement)).all()
    prefix = request.app[ctx.SETTINGS].queue_prefix
    page, cursor = split_page(rows, query.limit)
    return json_response(JobList(items=[job_document(r, queue_prefix=prefix) for r in page], next_cursor=cursor))


async def cancel_job(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    job_id = path_uuid(request, "id", what="job")
    with db_errors():
        async with request.app[ctx.ENGINE].begin() as conn:
            row = (await conn.execute(q.cancel(app.app_id, job_id))).first()
            if row is None:
                status = (
                    await conn.execute(
                        select(jobs_table.c.status).where(jobs_table.c.id == job_id, jobs_table.c.app_id == app.app_id)
                    )
                ).scalar()
    if row is None:
        if status is None:
            raise NotFound("no such job")
        raise Conflict(f"a {status} job cannot be cancelled", details={"status": status})
    return json_response(job_document(row, queue_prefix=request.app[ctx.SETTINGS].queue_prefix))


def _idempotency_key(request: web.Request, spec: JobIn) -> str | None:
    header = request.headers.get("Idempotency-Key")
    if header is not None and not 1 <= len(header) <= 255:
        raise ValidationFailed("Idempotency-Key must be 1 to 255 characters")
    if header is not None and spec.idempotency_key is not None and header != spec.idempotency_key:
        raise ValidationFailed("Idempotency-Key header and body idempotency_key differ")
    return spec.idempotency_key or header


class _Row:
    """Attribute access over a stored row dict, so fresh and replayed jobs share ``job_document``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


_ERRORS = (401, 403, 404, 429, 503)
ROUTES = [
    Route(
        "POST",
        "/v1/jobs",
        create_job,
        "Create a job",
        JobOut,
        status=202,
        body=JobIn,
        scope="jobs",
        errors=(*_ERRORS, 400, 409, 413, 415, 422),
    ),
    Route(
        "GET",
        "/v1/jobs",
        list_jobs,
        "List jobs, newest first",
        JobList,
        query=JobListQuery,
        scope="jobs",
        errors=(*_ERRORS, 422),
    ),
    Route("GET", "/v1/jobs/{id}", get_job, "Read a job", JobOut, scope="jobs", errors=_ERRORS),
    Route(
        "POST",
        "/v1/jobs/{id}/cancel",
        cancel_job,
        "Cancel a job that has not started",
        JobOut,
        scope="jobs",
        errors=(*_ERRORS, 409),
    ),
]
