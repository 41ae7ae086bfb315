"""/v1/jobs: create, read, list and cancel jobs. An app only ever sees its own jobs."""

from __future__ import annotations

from aiohttp import web

from satworks.db import jobs as jobs_db
from satworks.errors import NotFound
from satworks.http import context as ctx
from satworks.http.pagination import decode_cursor, next_cursor
from satworks.http.requests import (
    accepted,
    idempotency_key,
    json_body,
    json_response,
    path_uuid,
    query_params,
    validate,
)
from satworks.http.route import Route
from satworks.http.schemas import JobIn, JobList, JobListQuery, JobOut


async def create_job(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    spec = validate(JobIn, await json_body(request, max_bytes=settings.max_body_bytes), what="job request")
    key = idempotency_key(request, spec.idempotency_key)
    job, replayed = await request.app[ctx.INTAKE].jobs.submit(app.app_id, spec, key)
    return accepted(JobOut.document(job, queue_prefix=settings.queue_prefix), f"/v1/jobs/{job.id}", replayed=replayed)


async def get_job(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    job = await jobs_db.get(request.app[ctx.ENGINE], app.app_id, path_uuid(request, "id", what="job"))
    if job is None:
        raise NotFound("no such job")
    return json_response(JobOut.document(job, queue_prefix=request.app[ctx.SETTINGS].queue_prefix))


async def list_jobs(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    query = validate(JobListQuery, query_params(request), what="query")
    page = await jobs_db.listing(
        request.app[ctx.ENGINE],
        app.app_id,
        status=query.status,
        job_type=query.type,
        before_seq=decode_cursor(query.cursor) if query.cursor else None,
        limit=query.limit,
    )
    prefix = request.app[ctx.SETTINGS].queue_prefix
    items = [JobOut.document(job, queue_prefix=prefix) for job in page.items]
    return json_response({"items": items, "next_cursor": next_cursor(page)})  # JobList


async def cancel_job(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    job = await jobs_db.cancel(request.app[ctx.ENGINE], app.app_id, path_uuid(request, "id", what="job"))
    return json_response(JobOut.document(job, queue_prefix=request.app[ctx.SETTINGS].queue_prefix))


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
        errors=(*_ERRORS, 400, 408, 409, 413, 415, 422),
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
