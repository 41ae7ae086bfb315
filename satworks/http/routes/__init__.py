"""Every route, declared once: the app registers these and the OpenAPI document describes them."""

from __future__ import annotations

from satworks.http.route import Route
from satworks.http.routes import (
    audit,
    dead_letters,
    draw_pages,
    draws,
    health,
    jobs,
    meta,
    notify,
    payments,
    reports,
    schedules,
    webhooks,
)


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *jobs.ROUTES,
        *payments.ROUTES,
        *draws.ROUTES,
        *draw_pages.ROUTES,
        *webhooks.ROUTES,
        *notify.ROUTES,
        *meta.ROUTES,
        *reports.ROUTES,
        *schedules.ROUTES,
        *dead_letters.ROUTES,
        *audit.ROUTES,
    ]
