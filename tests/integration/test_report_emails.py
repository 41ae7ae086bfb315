"""Daily reports emailed to the app's report address: the notifications stack (its own database, a worker
process, the aiosmtpd sink), the apps set up with the real ``satworks apps`` command line.

Only the daily task's reports are emailed, once each, and only to an app that gave an address; a
report asked for through ``POST /v1/reports`` is not.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from satworks.db.engine import sync_engine
from satworks.emails.outbox import public_base
from satworks.jobs.base import JobContext, NoPayload
from satworks.jobs.reports import daily_reports, queue_report_email
from satworks.reports.spec import ReportKind, ReportSpec
from tests.integration.notify_stack import NotifyStack
from tests.platform_support import worker_resources
from tests.support import ROOT, eventually, scalar, settings_env

pytestmark = pytest.mark.timeout(120)


def satworks(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "satworks.cli", *args],
        env=settings_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_app(settings: Any, name: str, *options: str) -> str:
    created = satworks(settings, "apps", "create", name, "--quiet", *options)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def app_id(settings: Any, name: str) -> str:
    return str(scalar(settings, "SELECT id FROM apps WHERE name = %s AND revoked_at IS NULL", name))


def run_daily(settings: Any) -> dict[str, Any]:
    """The scheduler's daily task, as its job runs it (it submits through the intake's own loop)."""
    with worker_resources(settings) as res:
        return daily_reports(JobContext(uuid.uuid4(), 1, settings, res), NoPayload())


def emails_of(settings: Any, app: str) -> list[tuple[str, list[str]]]:
    rows = scalar(
        settings,
        "SELECT coalesce(json_agg(json_build_array(template, to_addrs) ORDER BY seq), '[]')"
        " FROM emails WHERE app_id = %s",
        app,
    )
    return [(row[0], row[1]) for row in rows]


async def test_the_daily_report_of_an_app_with_an_address_arrives_by_email_once(notify: NotifyStack) -> None:
    settings = notify.settings
    tag = uuid.uuid4().hex[:8]
    address = f"ops-{tag}@example.org"
    named, silent = f"reported-{tag}", f"silent-{tag}"
    key = create_app(settings, named, "--daily-report", "--report-email", f"Ops <{address}>")
    create_app(settings, silent)
    opted = satworks(settings, "apps", "daily-report", silent, "on")  # opted in, no address: no email
    assert opted.returncode == 0, opted.stderr
    auth = {"Authorization": f"Bearer {key}"}
    try:
        # A report the app asks for itself is not emailed: only the daily task's are.
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        yesterday = today - timedelta(days=1)
        asked = await notify.client.post(
            "/v1/reports",
            json={"kind": "jobs", "from": yesterday.isoformat(), "to": today.isoformat(), "format": "csv"},
            headers=auth,
        )
        assert asked.status == 202, await asked.text()
        own = (await asked.json())["id"]

        first = await asyncio.to_thread(run_daily, settings)
        again = await asyncio.to_thread(run_daily, settings)
        assert (first["new"], again["new"]) == (4, 0), (first, again)  # payments and jobs, for both apps

        async def two() -> list[Any] | None:
            found = [m for m in notify.env.sink.sink.store.all() if address in m.rcpt_tos]
            return found if len(found) >= 2 else None

        messages = await eventually(two, timeout_s=60, what="two daily reports in the sink")
        reports = scalar(
            settings,
            "SELECT json_object_agg(payload->>'kind', id) FROM jobs"
            " WHERE app_id = %s AND type = 'report' AND idempotency_key LIKE 'daily-report:%%'",
            app_id(settings, named),
        )
        base = public_base(settings)
        day = yesterday.date().isoformat()
        seen = {}
        for message in messages:
            parsed = message.parsed()
            text = parsed.get_body(("plain",)).get_content()
            html = parsed.get_body(("html",)).get_content()
            kind = "payments" if "Payments report" in parsed["Subject"] else "jobs"
            link = f"{base}/v1/reports/{reports[kind]}/download"
            assert parsed["Subject"] == f"Your report is ready: {kind.title()} report ({day} UTC)"
            assert link in text and f'href="{link}"' in html
            assert parsed["To"] == f"Ops <{address}>"
            seen[kind] = link
        assert set(seen) == {"payments", "jobs"}
        download = await notify.client.get(seen["payments"].removeprefix(base), headers=auth)
        assert download.status == 200 and download.content_type == "text/html"

        async def own_done() -> bool | None:
            report = await (await notify.client.get(f"/v1/reports/{own}", headers=auth)).json()
            return True if report["status"] == "succeeded" else None

        await eventually(own_done, timeout_s=60, what="the app's own report")
        emailed = emails_of(settings, app_id(settings, named))
        assert emailed == [("report_ready", [f"Ops <{address}>"])] * 2
        assert emails_of(settings, app_id(settings, silent)) == []

        # The report stored again would make no second email: it is keyed by the report.
        engine = sync_engine(settings.database_url, pool_size=1)
        try:
            with engine.begin() as conn:
                spec = ReportSpec(kind=ReportKind.JOBS, from_=yesterday, to=today)
                report_id, owner = uuid.UUID(reports["jobs"]), uuid.UUID(app_id(settings, named))
                assert queue_report_email(conn, settings, report_id, owner, "Jobs report", spec) is None
        finally:
            engine.dispose()
        assert len([m for m in notify.env.sink.sink.store.all() if address in m.rcpt_tos]) == 2
    finally:
        for name in (named, silent):  # other tests of this database count the opted-in apps
            satworks(settings, "apps", "daily-report", name, "off")


def test_a_bad_report_address_is_refused_and_nothing_is_stored(settings: Any) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    refused = satworks(settings, "apps", "create", name, "--daily-report", "--report-email", "not-an-address")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: invalid email address: 'not-an-address'")
    assert scalar(settings, "SELECT count(*) FROM apps WHERE name = %s", name) == 0

    assert satworks(settings, "apps", "create", name).returncode == 0
    try:
        changed = satworks(settings, "apps", "daily-report", name, "on", "--email", "Reports@Example.ORG")
        assert changed.returncode == 0, changed.stderr
        assert changed.stdout.strip() == f"app {name!r}: daily report on, emailed to Reports@example.org"
        assert scalar(settings, "SELECT daily_report FROM apps WHERE name = %s", name) is True
        assert scalar(settings, "SELECT report_email FROM apps WHERE name = %s", name) == "Reports@example.org"
    finally:
        assert satworks(settings, "apps", "daily-report", name, "off").returncode == 0
    assert scalar(settings, "SELECT report_email FROM apps WHERE name = %s", name) == "Reports@example.org"
