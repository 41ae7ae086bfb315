"""Apps with known names for the operator API tests (the admin endpoints filter by app name)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.settings import Settings


@dataclass(frozen=True)
class NamedApp:
    name: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def new_app(settings: Settings, *, admin: bool = False, prefix: str = "app") -> NamedApp:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    engine = sync_engine(settings.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            key = apps.create(conn, name, admin=admin, rate_limit_per_minute=None)
    finally:
        engine.dispose()
    return NamedApp(name, key)


def revoke_app(settings: Settings, name: str) -> None:
    engine = sync_engine(settings.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            apps.revoke(conn, name)
    finally:
        engine.dispose()
