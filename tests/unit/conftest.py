"""Fixtures for the in-process tests of the concurrent core: the session's migrated database, one app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from satworks.db import apps
from satworks.db.engine import sync_engine
from satworks.db.schema import apps as apps_table
from satworks.settings import Settings


@pytest.fixture
def db(base_settings: Settings) -> Iterator[Engine]:
    """A sync engine on the session's database, for arranging rows and reading them back."""
    engine = sync_engine(base_settings.database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def app_id(db: Engine) -> uuid.UUID:
    name = f"unit-{uuid.uuid4().hex[:12]}"
    with db.begin() as conn:
        apps.create(conn, name, admin=False, rate_limit_per_minute=None)
        return uuid.UUID(str(conn.execute(select(apps_table.c.id).where(apps_table.c.name == name)).scalar_one()))


@pytest.fixture
def prefix() -> str:
    """A queue prefix of this test's own, so no two tests share a queue name."""
    return f"u{uuid.uuid4().hex[:8]}_"
