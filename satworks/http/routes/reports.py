"""/v1/reports: ask for a report (a ``report`` job on ``bulk``), read it, download its document.

An app reads only its own reports; ``all_apps`` (every app's data) needs an admin key.
"""

from __future__ import annotations

from aiohttp import web

from satworks.db import reports as reports_db
from satworks.errors import Conflict, Forbidden, NotFound
from satworks.http import context as ctx
from satworks.http.requests import accepted, idempotency_key, json_body, json_response, path_uuid, validate
from satworks.http.route import Route
from satworks.http.schemas import ReportOut, ReportSpec
from satworks.jobs.request import JobIn


async def create_report(request: web.Request) -> web.Response:
    settings = request.app[ctx.SETTINGS]
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    spec = validate(ReportSpec, await json_body(request, max_bytes=settings.max_body_bytes), what="report request")
    if spec.all_apps and "admin" not in app.scopes:
        raise Forbidden("a report of all apps needs an admin key")
    job_spec = JobIn(type=reports_db.REPORT_JOB_TYPE, payload=spec.model_dump(mode="json"))
    key = idempotency_key(request, None)
    job, replayed = await request.app[ctx.INTAKE].jobs.submit(app.app_id, job_spec, key, internal=True)
    report = await reports_db.get(request.app[ctx.ENGINE], app.app_id, job.id)
    if report is None:  # the app's own job, just written: only retention could have removed it
        raise NotFound("no such report")
    return accepted(ReportOut.from_record(report), f"/v1/reports/{job.id}", replayed=replayed)


async def get_report(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    report = await reports_db.get(request.app[ctx.ENGINE], app.app_id, path_uuid(request, "id", what="report"))
    if report is None:
        raise NotFound("no such report")
    return json_response(ReportOut.from_record(report))


async def download_report(request: web.Request) -> web.Response:
    app = await request.app[ctx.AUTH].authenticate(request, "jobs")
    report_id = path_uuid(request, "id", what="report")
    document = await reports_db.document(request.app[ctx.ENGINE], app.app_id, report_id)
    if document is None:
        report = await reports_db.get(request.app[ctx.ENGINE], app.app_id, report_id)
        if report is None:
            raise NotFound("no such report")
        raise Conflict("the report is not ready", details={"status": report.job_status.value})
    content, content_type, filename = document
    return web.Response(
        body=content,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


_ERRORS = (401, 403, 404, 429, 503)
ROUTES = [
    Route(
        "POST",
        "/v1/reports",
        create_report,
        "Ask for a report (payments or jobs, CSV or HTML); built by a bulk job",
        ReportOut,
        status=202,
        body=ReportSpec,
        scope="jobs",
        errors=(*_ERRORS, 400, 409, 413, 415, 422),
    ),
    Route("GET", "/v1/reports/{id}", get_report, "Read a report's status", ReportOut, scope="jobs", errors=_ERRORS),
    Route(
        "GET",
        "/v1/reports/{id}/download",
        download_report,
        "Download a finished report (text/csv or text/html, as asked)",
        None,
        scope="jobs",
        errors=(*_ERRORS, 409),
        content_type="text/csv",
    ),
]
