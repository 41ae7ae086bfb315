"""Typed keys for the resources an intake app holds (opened and closed in ``cleanup_ctx``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.broker.stats import QueueStats
from satworks.http.auth import Authenticator
from satworks.intake.resources import Intake
from satworks.metrics.http import HttpMetrics
from satworks.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
ENGINE = web.AppKey("engine", AsyncEngine)
INTAKE = web.AppKey("intake", Intake)
AUTH = web.AppKey("auth", Authenticator)
REGISTRY = web.AppKey("registry", CollectorRegistry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
QUEUE_STATS = web.AppKey("queue_stats", QueueStats)
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
