"""Every route, declared once: the app registers these and the OpenAPI document describes them."""

from __future__ import annotations

from satworks.http.route import Route
from satworks.http.routes import audit, dead_letters, health, jobs, meta, payments, webhooks


def all_routes() -> list[Route]:
    return [
        *health.ROUTES,
        *jobs.ROUTES,
        *payments.ROUTES,
        *webhooks.ROUTES,
        *meta.ROUTES,
        *dead_letters.ROUTES,
        *audit.ROUTES,
    ]
