"""Reports over HTTP, built by the worker, checked against sums the test computes from the rows it wrote.

Rows are written straight into Postgres with creation times in a period of their own (a random day
in 2001), so no other test's data falls in it, and each app's share is known.
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.jobs.base import JobContext, NoPayload
from satworks.jobs.reports import daily_reports
from satworks.settings import Settings
from tests.platform_support import worker_resources
from tests.support import WorkerProcess, db_dsn, eventually

pytestmark = pytest.mark.timeout(120)

STATUSES = ("new", "processing", "settled", "expired", "invalid")


def percentile(values: list[float], q: float) -> float:
    """Postgres's ``percentile_cont``: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def app_of(settings: Settings, key: str) -> uuid.UUID:
    """The app of an API key (``sw_<key_id>_<secret>``)."""
    with psycopg.connect(db_dsn(settings)) as conn:
        row = conn.execute("SELECT id FROM apps WHERE key_id = %s", (key.split("_")[1],)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def write_payments(settings: Settings, app_id: uuid.UUID, start: datetime, count: int) -> list[dict[str, Any]]:
    rng = random.Random(str(app_id))
    rows = []
    for _ in range(count):
        status = rng.choice(STATUSES)
        created = start + timedelta(seconds=rng.randrange(0, 86_000))
        settled = created + timedelta(seconds=rng.randrange(1, 5_000), milliseconds=rng.randrange(1000))
        rows.append(
            {
                "id": uuid.uuid4(),
                "app": app_id,
                "status": status,
                "amount": rng.randrange(1, 10**9),
                "received": rng.randrange(0, 10**9),
                "created": created,
                "settled": settled if status == "settled" else None,
                "address": f"bcrt1qtest{uuid.uuid4().hex}",
            }
        )
    with psycopg.connect(db_dsn(settings)) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO payment_requests (id, app_id, method, status, amount_sat, received_sat,"
            " required_confirmations, monitoring_s, address, address_supplied, metadata, request_hash, created_at,"
            " expires_at, settled_at)"
            " VALUES (%(id)s, %(app)s, 'onchain', %(status)s, %(amount)s, %(received)s, 1, 3600, %(address)s,"
            " false, '{}', 'h', %(created)s, %(created)s + interval '1 hour', %(settled)s)",
            rows,
        )
    return rows


def write_jobs(settings: Settings, app_id: uuid.UUID, start: datetime, count: int) -> list[dict[str, Any]]:
    rng = random.Random(str(app_id) + "jobs")
    rows = []
    for _ in range(count):
        status = rng.choice(("succeeded", "failed", "dead", "queued", "cancelled"))
        created = start + timedelta(seconds=rng.randrange(0, 86_000))
        started = created + timedelta(seconds=1) if status in ("succeeded", "failed", "dead") else None
        finished = (
            started + timedelta(milliseconds=rng.randrange(1, 60_000))
            if started
            else (created if status == "cancelled" else None)
        )
        rows.append(
            {
                "id": uuid.uuid4(),
                "app": app_id,
                "type": rng.choice(("canary", "other")),
                "status": status,
                "created": created,
                "started": started,
                "finished": finished,
            }
        )
    with psycopg.connect(db_dsn(settings)) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO jobs (id, app_id, type, payload, priority, queue, status, max_retries, request_hash,"
            " created_at, started_at, finished_at)"
            " VALUES (%(id)s, %(app)s, %(type)s, '{}', 'normal', 'unused', %(status)s, 0, 'h', %(created)s,"
            " %(started)s, %(finished)s)",
            rows,
        )
    return rows


async def built(client: TestClient[Any, Any], headers: dict[str, str], body: dict[str, Any]) -> tuple[Any, bytes]:
    """POST the report, wait for its job, download it; returns (the download response, its bytes)."""
    response = await client.post("/v1/reports", json=body, headers=headers)
    assert response.status == 202, await response.text()
    report = await response.json()
    assert response.headers["Location"] == f"/v1/reports/{report['id']}"

    async def done() -> dict[str, Any] | None:
        current = await (await client.get(f"/v1/reports/{report['id']}", headers=headers)).json()
        return current if current["status"] in ("succeeded", "failed", "dead") else None

    final = await eventually(done, timeout_s=60, what="the report job")
    assert final["status"] == "succeeded", final
    assert (final["kind"], datetime.fromisoformat(final["from"])) == (
        body["kind"],
        datetime.fromisoformat(body["from"]),
    )
    download = await client.get(final["download"], headers=headers)
    assert download.status == 200
    return download, await download.read()


def table(content: bytes) -> dict[tuple[str, str], dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    first, second = list(rows[0])[:2]
    return {(row[first], row[second]): row for row in rows}


def day() -> datetime:
    return datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(365))


def period(start: datetime) -> dict[str, str]:
    return {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}


async def test_payments_report_matches_independent_sums_and_sees_only_its_app(
    client: TestClient[Any, Any], settings: Settings, make_key: Any, worker: WorkerProcess
) -> None:
    key_a, key_b, admin = make_key(), make_key(), make_key(admin=True)
    a, b = app_of(settings, key_a), app_of(settings, key_b)
    start = day()
    mine = write_payments(settings, a, start, 120)
    theirs = write_payments(settings, b, start, 40)
    write_payments(settings, a, start + timedelta(days=1), 5)  # the next day: outside the period
    headers = {"Authorization": f"Bearer {key_a}"}

    download, content = await built(client, headers, {"kind": "payments", **period(start), "format": "csv"})
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="satworks-payments-') and disposition.endswith('.csv"')

    got = table(content)
    by_status: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in mine:
        by_status[row["status"]].append(row)
    for status, rows in by_status.items():
        line = got[(status, "onchain")]
        assert int(line["count"]) == len(rows)
        assert int(line["amount_sat"]) == sum(r["amount"] for r in rows)
        assert int(line["received_sat"]) == sum(r["received"] for r in rows)
    total = got[("*", "*")]
    assert (int(total["count"]), int(total["amount_sat"])) == (len(mine), sum(r["amount"] for r in mine))
    settle_s = [(r["settled"] - r["created"]).total_seconds() for r in mine if r["settled"]]
    assert float(total["settle_p50_s"]) == pytest.approx(percentile(settle_s, 0.5), abs=0.001)
    assert float(total["settle_p99_s"]) == pytest.approx(percentile(settle_s, 0.99), abs=0.001)

    # Another app cannot read it; a plain key cannot ask for every app; an admin key can.
    report_id = download.url.path.split("/")[3]
    other = {"Authorization": f"Bearer {key_b}"}
    assert (await client.get(f"/v1/reports/{report_id}", headers=other)).status == 404
    assert (await client.get(f"/v1/reports/{report_id}/download", headers=other)).status == 404
    refused = await client.post(
        "/v1/reports", json={"kind": "payments", **period(start), "all_apps": True}, headers=headers
    )
    assert refused.status == 403
    _, everything = await built(
        client, {"Authorization": f"Bearer {admin}"}, {"kind": "payments", **period(start), "all_apps": True}
    )
    assert int(table(everything)[("*", "*")]["count"]) == len(mine) + len(theirs)


async def test_jobs_report_as_html_counts_by_type_and_status_with_failure_rates(
    client: TestClient[Any, Any], settings: Settings, make_key: Any, worker: WorkerProcess
) -> None:
    key = make_key()
    app_id = app_of(settings, key)
    start = day()
    rows = write_jobs(settings, app_id, start, 150)
    headers = {"Authorization": f"Bearer {key}"}

    _, csv_content = await built(client, headers, {"kind": "jobs", **period(start), "format": "csv"})
    got = table(csv_content)
    counts = Counter((r["type"], r["status"]) for r in rows)
    for (job_type, status), count in counts.items():
        assert int(got[(job_type, status)]["count"]) == count
    for job_type in ("canary", "other"):
        of_type = [r for r in rows if r["type"] == job_type]
        outcomes = [r for r in of_type if r["status"] in ("succeeded", "failed", "dead")]
        failures = [r for r in outcomes if r["status"] != "succeeded"]
        line = got[(job_type, "*")]
        assert float(line["failure_rate"]) == pytest.approx(len(failures) / len(outcomes), abs=0.0001)
        durations = [(r["finished"] - r["started"]).total_seconds() for r in of_type if r["started"]]
        assert float(line["duration_p95_s"]) == pytest.approx(percentile(durations, 0.95), abs=0.001)

    download, html = await built(client, headers, {"kind": "jobs", **period(start), "format": "html"})
    assert download.headers["Content-Type"] == "text/html; charset=utf-8"
    assert download.headers["Content-Disposition"].endswith('.html"')
    assert b"<table" in html and f"<td>{len(rows)}</td>".encode() in html


async def test_a_bad_report_request_is_a_422_and_stores_nothing(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    for body in (
        {"kind": "draws", "from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"},
        {"kind": "payments", "from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
        {"kind": "payments", "from": "2024-01-01T00:00:00", "to": "2024-01-02T00:00:00Z"},
        {"kind": "payments", "from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"kind": "jobs", "from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z", "format": "pdf"},
    ):
        response = await client.post("/v1/reports", json=body, headers=auth)
        assert response.status == 422, (body, await response.text())
        assert (await response.json())["error"]["code"]
    # Report and platform jobs come only from satworks: through /v1/jobs an app could forge all_apps.
    forged = {"kind": "payments", "from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z", "all_apps": True}
    for job in ({"type": "report", "payload": forged}, {"type": "platform.reconcile", "payload": {}}):
        response = await client.post("/v1/jobs", json=job, headers=auth)
        assert response.status == 422
        assert "report" not in (await response.json())["error"]["details"]["known_types"]
    listed = await (await client.get("/v1/jobs", headers=auth)).json()
    assert listed["items"] == []
    assert (await client.get(f"/v1/reports/{uuid.uuid4()}", headers=auth)).status == 404
    assert (await client.get("/v1/reports/not-a-uuid/download", headers=auth)).status == 404


def test_the_daily_task_asks_once_per_day_for_each_opted_in_app(settings: Settings) -> None:
    engine = sync_engine(settings.database_url, pool_size=1)
    name = f"daily-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        opted = apps.create(conn, name, admin=False, rate_limit_per_minute=None)
        apps.create(conn, f"quiet-{uuid.uuid4().hex[:8]}", admin=False, rate_limit_per_minute=None)
        apps.set_daily_report(conn, name, True)
    engine.dispose()
    with worker_resources(settings) as res:
        first = daily_reports(JobContext(uuid.uuid4(), 1, settings, res), NoPayload())
        again = daily_reports(JobContext(uuid.uuid4(), 1, settings, res), NoPayload())
    assert (first["apps"], first["new"]) == (1, 2), first
    assert (again["reports"], again["new"]) == (2, 0)  # the same day's reports exist: nothing new
    with psycopg.connect(db_dsn(settings)) as conn:
        rows = conn.execute(
            "SELECT payload->>'kind', payload->>'from', payload->>'to', payload->>'format' FROM jobs"
            " WHERE type = 'report' AND app_id = %s ORDER BY 1",
            (app_of(settings, opted),),
        ).fetchall()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    assert [row[0] for row in rows] == ["jobs", "payments"]
    assert all(
        (datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]), row[3]) == (yesterday, today, "html")
        for row in rows
    )
