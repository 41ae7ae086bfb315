"""One connection of an async engine's pool held by a sequential writer, statements sent through psycopg.

The intake batcher runs one static statement per batch (its INSERT, its ``enqueued`` mark). Through
SQLAlchemy each of those paid a pool checkout and return, the switch to autocommit and back, and a
greenlet hop around the driver call: more CPU than the driver's own work for the statement. A writer
that runs its statements one after the other holds one connection instead, in autocommit (each
statement its own transaction), and hands the statements to psycopg's ``AsyncConnection`` directly,
as ``satworks.workers.status`` does with its synchronous connection.

Errors come out as SQLAlchemy's (``DBAPIError.instance``), so callers handle them as on the engine:
``db_errors`` maps a lost database to ``DependencyUnavailable``, ``DataError``/``IntegrityError`` are a
refused row. A connection that fails (or whose statement is interrupted) is invalidated; the next
statement takes a fresh one from the pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from satworks.db.engine import db_errors


class HeldConnection:
    """Not for concurrent use: one writer's statements, one after the other."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: psycopg.AsyncConnection[Any] | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The engine whose pool the connection comes from (for other work of the same writer)."""
        return self._engine

    async def run(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run ``statement`` (psycopg's ``%s`` placeholders) as its own transaction; its rows (none
        without ``RETURNING``). Raises ``DependencyUnavailable`` when the database cannot be reached,
        SQLAlchemy's ``DBAPIError`` subclasses for what the database refuses."""
        with db_errors():
            driver = self._driver or await self._connect()
            try:
                cursor = await driver.execute(statement, params)
                return await cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                broken = driver.broken or isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
                if broken:
                    await self.close(broken=True)
                hide = self._engine.sync_engine.hide_parameters
                raise DBAPIError.instance(
                    statement, params, exc, psycopg.Error, hide_parameters=hide, connection_invalidated=broken
                ) from exc
            except BaseException:  # e.g. cancelled mid-statement: the protocol state is unknown
                await self.close(broken=True)
                raise

    async def close(self, *, broken: bool = False) -> None:
        """Give the connection back to the pool (``broken``: closed and never handed out again). Never
        raises: a connection that cannot be given back cleanly is dropped."""
        conn, self._conn, self._driver = self._conn, None, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if broken:
                await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await self._engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")  # reset when given back
            driver = (await conn.get_raw_connection()).driver_connection
        except BaseException:
            await conn.close()
            raise
        assert isinstance(driver, psycopg.AsyncConnection)
        self._conn, self._driver = conn, driver
        return driver
