"""Report jobs: ``report`` builds one report; ``platform.daily_reports`` asks for yesterday's, per app that opted in.

``report`` aggregates in one query (``db/reports.py``), renders, stores the document under the
job's id and queues the app event ``report.ready`` (delivered by the notifications capability).
Its payload is the ``ReportSpec``; it is internal, so an app cannot submit it through
``POST /v1/jobs`` (where it could forge ``all_apps``), only through ``POST /v1/reports``.

``platform.daily_reports`` submits, for every active app with ``daily_report`` set, a ``report`` of
payments and one of jobs (HTML) over the previous UTC day, through the intake like any job, keyed
``daily-report:<kind>:<day>`` under the app: a second run of the same day makes nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from satworks import clock
from satworks.db import apps as apps_db
from satworks.db import reports as db
from satworks.errors import PermanentError
from satworks.jobs.base import JobContext, JobType, NoPayload
from satworks.jobs.request import JobIn
from satworks.reports.kinds import KINDS
from satworks.reports.render import Renderer
from satworks.reports.spec import ReportFormat, ReportKind, ReportSpec
from satworks.settings import Settings

log = logging.getLogger(__name__)
_renderer = Renderer()  # the Jinja2 environment: templates load lazily, nothing is opened


def build_report(ctx: JobContext, spec: ReportSpec) -> dict[str, Any]:
    res = ctx.worker()
    kind = KINDS[spec.kind]
    with res.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        owner = db.owner(conn, ctx.job_id)
        if owner is None:
            raise PermanentError("the report's job is gone")
        rows = [kind.row(r) for r in kind.query(conn, spec.from_, spec.to, None if spec.all_apps else owner)]
    document = _renderer.render(
        kind, spec, rows, scope="all apps" if spec.all_apps else "this app's data", generated_at=clock.utcnow()
    )
    event = {
        "report_id": str(ctx.job_id),
        "kind": spec.kind.value,
        "format": spec.format.value,
        "from": spec.from_.isoformat(),
        "to": spec.to.isoformat(),
        "download": f"/v1/reports/{ctx.job_id}/download",
    }
    with res.engine.begin() as conn:
        db.store(
            conn,
            ctx.job_id,
            owner,
            kind=spec.kind.value,
            fmt=spec.format.value,
            content=document.content,
            content_type=document.content_type,
            filename=document.filename,
            event=event,
        )
    return {"rows": len(rows), "bytes": len(document.content), "filename": document.filename}


def daily_reports(ctx: JobContext, payload: NoPayload) -> dict[str, Any]:
    res = ctx.worker()
    today = datetime.combine(clock.utcnow().date(), time(), tzinfo=UTC)
    start = today - timedelta(days=1)
    with res.engine.connect() as conn:
        app_ids = apps_db.daily_report_apps(conn)
    requests = [
        (
            app_id,
            JobIn(
                type=REPORT.name,
                payload=ReportSpec(kind=kind, from_=start, to=today, format=ReportFormat.HTML).model_dump(mode="json"),
            ),
            f"daily-report:{kind.value}:{start.date().isoformat()}",
        )
        for app_id in app_ids
        for kind in ReportKind
    ]
    created = asyncio.run(_submit(res.settings, requests)) if requests else 0
    log.info("daily reports asked for", extra={"action": "daily_reports", "apps": len(app_ids), "new": created})
    return {"apps": len(app_ids), "reports": len(requests), "new": created, "day": start.date().isoformat()}


async def _submit(settings: Settings, requests: list[tuple[uuid.UUID, JobIn, str]]) -> int:
    """Submit through the intake, as the scheduler does; returns how many were new."""
    from satworks.intake.resources import open_intake  # the intake imports the job catalog

    async with open_intake(settings, pool_size=1, threads=1) as intake:
        results = await asyncio.gather(
            *(intake.jobs.submit(app_id, spec, key, internal=True) for app_id, spec, key in requests)
        )
    return sum(1 for _, replayed in results if not replayed)


REPORT = JobType(
    name=db.REPORT_JOB_TYPE,
    payload=ReportSpec,
    run=build_report,
    default_priority="low",
    max_retries=3,
    min_backoff_ms=5_000,
    max_backoff_ms=5 * 60_000,
    time_limit_ms=15 * 60_000,
    internal=True,
)
DAILY_REPORTS = JobType(
    name="platform.daily_reports",
    payload=NoPayload,
    run=daily_reports,
    default_priority="low",
    max_retries=3,
    min_backoff_ms=10_000,
    max_backoff_ms=5 * 60_000,
    time_limit_ms=10 * 60_000,
    internal=True,
)
