"""Engines: async for the intake, sync for workers and the CLI. Neither connects at import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from satworks.errors import DependencyUnavailable


def async_engine(url: str, *, pool_size: int) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)


def sync_engine(url: str, *, pool_size: int) -> Engine:
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


@contextmanager
def db_errors() -> Iterator[None]:
    """Map a lost or refused database connection to ``DependencyUnavailable``; other errors pass."""
    try:
        yield
    except OperationalError as exc:
        raise DependencyUnavailable("database unavailable", details={"dependency": "postgres"}) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DependencyUnavailable("database unavailable", details={"dependency": "postgres"}) from exc
        raise


async def ping(engine: AsyncEngine) -> None:
    """Raise ``DependencyUnavailable`` unless the database answers."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, SQLAlchemyError) as exc:
        raise DependencyUnavailable("database unavailable", details={"dependency": "postgres"}) from exc
