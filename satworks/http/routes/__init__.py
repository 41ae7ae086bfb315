"""Every route, declared once: the app registers these and the OpenAPI document describes them."""

from __future__ import annotations

from satworks.http.route import Route
from satworks.http.routes import draw_pages, draws, health, jobs, meta, payments, webhooks


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *jobs.ROUTES,
        *payments.ROUTES,
        *draws.ROUTES,
        *draw_pages.ROUTES,
        *webhooks.ROUTES,
        *meta.ROUTES,
    ]
