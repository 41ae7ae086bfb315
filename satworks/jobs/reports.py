"""Report jobs: ``report`` builds one report; ``platform.daily_reports`` asks for yesterday's, per app that opted in.

``report`` aggregates in one query (``db/reports.py``), renders, stores the document under the
job's id and queues the app event ``report.ready`` (delivered by the notifications capability); a
daily report of an app with a ``report_email`` also gets its ``report_ready`` email, in that same
transaction.
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

from sqlalchemy import Connection

from satworks import clock
from satworks.broker.client import enqueue_many
from satworks.broker.errors import broker_errors
from satworks.db import apps as apps_db
from satworks.db import emails as emails_db
from satworks.db import reports as db
from satworks.emails.outbox import Composer, ReportReady
from satworks.errors import BrokerUnavailable, PermanentError
from satworks.jobs.base import JobContext, JobType, NoPayload
from satworks.jobs.emails import send_message
from satworks.jobs.request import JobIn
from satworks.jobs.resources import WorkerResources
from satworks.reports.kinds import KINDS
from satworks.reports.render import Renderer
from satworks.reports.spec import ReportFormat, ReportKind, ReportSpec
from satworks.settings import Settings

log = logging.getLogger(__name__)
DAILY_KEY_PREFIX = "daily-report:"  # the daily task's reports: emailed to their app's report_email
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
    emailed: uuid.UUID | None = None
    with res.engine.begin() as conn:
        stored = db.store(
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
        if stored:
            emailed = queue_report_email(conn, res.settings, ctx.job_id, owner, f"{kind.title} report", spec)
    if emailed is not None:
        _send_email(res, emailed)
    return {
        "rows": len(rows),
        "bytes": len(document.content),
        "filename": document.filename,
        "emailed": emailed is not None,
    }


def queue_report_email(
    conn: Connection, settings: Settings, report_id: uuid.UUID, app_id: uuid.UUID, name: str, spec: ReportSpec
) -> uuid.UUID | None:
    """The ``report_ready`` email of a daily report whose app gave an address, written on ``conn``: the
    transaction that stores the report (once), keyed by the report (a second run makes none). None when
    there is nothing to send (not a daily report, no address, or one that no longer validates)."""
    address = db.daily_address(conn, report_id, DAILY_KEY_PREFIX)
    if address is None:
        return None
    ready = ReportReady(report_id, name, _period(spec), f"/v1/reports/{report_id}/download")
    email = Composer(settings).report(app_id, address, ready)
    return emails_db.insert_if_new(conn, email) if email is not None else None


def _send_email(res: WorkerResources, email_id: uuid.UUID) -> None:
    """Enqueue the send after the commit; if the broker cannot take it, the notifications sweep will."""
    try:
        with broker_errors():
            enqueue_many(res.broker, [(send_message(email_id, res.settings.queue_prefix), None)])
    except BrokerUnavailable:
        log.warning("report email left to the sweep", extra={"action": "report_email_deferred"})


def _period(spec: ReportSpec) -> str:
    """``2026-12-05 UTC`` for one UTC day, else ``FROM to TO UTC``."""
    start, end = spec.from_.astimezone(UTC), spec.to.astimezone(UTC)
    if start.time() == time() and end - start == timedelta(days=1):
        return f"{start.date().isoformat()} UTC"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


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
            f"{DAILY_KEY_PREFIX}{kind.value}:{start.date().isoformat()}",
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
