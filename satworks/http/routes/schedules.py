"""/v1/schedules: the scheduler's tasks, their last and next runs, and the leader (admin keys)."""

from __future__ import annotations

from aiohttp import web

from satworks.db import schedules as schedules_db
from satworks.db.engine import db_errors
from satworks.http import context as ctx
from satworks.http.requests import json_response
from satworks.http.route import Route
from satworks.http.schemas import ScheduleList, ScheduleOut


async def list_schedules(request: web.Request) -> web.Response:
    await request.app[ctx.AUTH].authenticate(request, "admin")
    with db_errors():
        async with request.app[ctx.ENGINE].connect() as conn:
            rows = await conn.run_sync(schedules_db.snapshot)
            leader = await conn.run_sync(schedules_db.leader)
    items = [
        ScheduleOut(
            task=row["task"],
            spec=row["spec"],
            enabled=row["enabled"],
            last_run=row["last_run_at"],
            last_status=row["last_status"],
            last_success=row["last_success_at"],
            next_run=row["next_run_at"],
            last_job_id=row["last_job_id"],
        )
        for row in rows
    ]
    return json_response(ScheduleList(items=items, leader=leader))


ROUTES = [
    Route(
        "GET",
        "/v1/schedules",
        list_schedules,
        "Scheduled tasks: last run, last success, next run",
        ScheduleList,
        scope="admin",
        errors=(401, 403, 429, 503),
    ),
]
