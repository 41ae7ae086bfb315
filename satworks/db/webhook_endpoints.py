"""Webhook endpoints: where an app wants its events, which ones, and the (encrypted) signing secrets.

An endpoint is soft-deleted (``deleted_at``) so its deliveries stay readable. ``pump_until`` is the
lease of the one pump that sends the endpoint's first attempts in event order (``jobs/webhooks.py``);
the lease value itself is the holder's token, so renewing and releasing are compare-and-set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from satworks.db.engine import db_errors
from satworks.db.schema import apps
from satworks.db.webhook_tables import webhook_deliveries, webhook_endpoints
from satworks.errors import Conflict, NotFound
from satworks.webhooks.status import DeliveryStatus


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """An endpoint as stored; the sealed secrets never appear in a repr (nor in logs)."""

    id: uuid.UUID
    app_id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    rotated_at: datetime | None
    previous_expires_at: datetime | None
    deleted_at: datetime | None
    seq: int
    secret_enc: str = field(repr=False)
    previous_secret_enc: str | None = field(repr=False)

    def sealed_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now, newest first: the current one, and the previous one in its overlap."""
        previous = self.previous_secret_enc
        if previous is not None and self.previous_expires_at is not None and self.previous_expires_at > now:
            return [self.secret_enc, previous]
        return [self.secret_enc]


ENDPOINT_COLUMNS = [
    webhook_endpoints.c[name]
    for name in (
        "id",
        "app_id",
        "url",
        "events",
        "created_at",
        "rotated_at",
        "previous_expires_at",
        "deleted_at",
        "seq",
        "secret_enc",
        "previous_secret_enc",
    )
]


def endpoint_record(row: Any) -> EndpointRecord:
    return EndpointRecord(*row)


@dataclass(frozen=True)
class NewEndpoint:
    id: uuid.UUID
    app_id: uuid.UUID
    url: str
    events: list[str]
    secret_enc: str = field(repr=False)


async def create(engine: AsyncEngine, new: NewEndpoint, *, max_per_app: int) -> EndpointRecord:
    """Insert an endpoint; raises ``Conflict`` when the app has ``max_per_app`` already."""
    with db_errors():
        async with engine.begin() as conn:
            # The app's row lock serialises concurrent registrations, so the count below holds.
            await conn.execute(select(apps.c.id).where(apps.c.id == new.app_id).with_for_update())
            count = await _count(conn, new.app_id)
            if count >= max_per_app:
                raise Conflict(f"an app may have at most {max_per_app} webhook endpoints", details={"max": max_per_app})
            row = (
                await conn.execute(
                    webhook_endpoints.insert()
                    .values(id=new.id, app_id=new.app_id, url=new.url, events=new.events, secret_enc=new.secret_enc)
                    .returning(*ENDPOINT_COLUMNS)
                )
            ).one()
    return endpoint_record(row)


async def _count(conn: AsyncConnection, app_id: uuid.UUID) -> int:
    query = select(func.count()).where(webhook_endpoints.c.app_id == app_id, webhook_endpoints.c.deleted_at.is_(None))
    return int((await conn.execute(query)).scalar_one())


async def listing(engine: AsyncEngine, app_id: uuid.UUID) -> list[EndpointRecord]:
    """The app's endpoints (not deleted), oldest first."""
    query = (
        select(*ENDPOINT_COLUMNS)
        .where(webhook_endpoints.c.app_id == app_id, webhook_endpoints.c.deleted_at.is_(None))
        .order_by(webhook_endpoints.c.seq)
    )
    with db_errors():
        async with engine.connect() as conn:
            return [endpoint_record(r) for r in await conn.execute(query)]


async def get(engine: AsyncEngine, app_id: uuid.UUID, endpoint_id: uuid.UUID) -> EndpointRecord:
    """Raises ``NotFound`` for another app's or a deleted endpoint."""
    query = select(*ENDPOINT_COLUMNS).where(
        webhook_endpoints.c.id == endpoint_id,
        webhook_endpoints.c.app_id == app_id,
        webhook_endpoints.c.deleted_at.is_(None),
    )
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("no such webhook endpoint")
    return endpoint_record(row)


async def delete(engine: AsyncEngine, app_id: uuid.UUID, endpoint_id: uuid.UUID) -> int:
    """Delete an endpoint: its open deliveries fail (``endpoint deleted``); returns how many. Raises ``NotFound``."""
    with db_errors():
        async with engine.begin() as conn:
            done = await conn.execute(
                update(webhook_endpoints)
                .where(
                    webhook_endpoints.c.id == endpoint_id,
                    webhook_endpoints.c.app_id == app_id,
                    webhook_endpoints.c.deleted_at.is_(None),
                )
                .values(deleted_at=func.now(), pump_until=None)
            )
            if done.rowcount == 0:
                raise NotFound("no such webhook endpoint")
            closed = await conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.endpoint_id == endpoint_id,
                    webhook_deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING)),
                )
                .values(status=DeliveryStatus.FAILED, finished_at=func.now(), last_error="endpoint deleted")
            )
    return int(closed.rowcount)


async def rotate(
    engine: AsyncEngine, app_id: uuid.UUID, endpoint_id: uuid.UUID, secret_enc: str, *, overlap_s: int
) -> EndpointRecord:
    """Make ``secret_enc`` the signing secret; the current one keeps signing for ``overlap_s`` (0: at once
    replaced). A previous secret still in its overlap is dropped. Raises ``NotFound``."""
    expires = func.now() + timedelta(seconds=overlap_s)
    statement = (
        update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.app_id == app_id,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .values(
            secret_enc=secret_enc,
            previous_secret_enc=webhook_endpoints.c.secret_enc if overlap_s > 0 else None,
            previous_expires_at=expires if overlap_s > 0 else None,
            rotated_at=func.now(),
        )
        .returning(*ENDPOINT_COLUMNS)
    )
    with db_errors():
        async with engine.begin() as conn:
            row = (await conn.execute(statement)).first()
    if row is None:
        raise NotFound("no such webhook endpoint")
    return endpoint_record(row)


async def all_sealed(engine: AsyncEngine) -> list[tuple[uuid.UUID, str, str | None]]:
    """``(id, secret_enc, previous_secret_enc)`` of every endpoint, for re-encrypting under a new key."""
    query = select(webhook_endpoints.c.id, webhook_endpoints.c.secret_enc, webhook_endpoints.c.previous_secret_enc)
    with db_errors():
        async with engine.connect() as conn:
            return [(r.id, r.secret_enc, r.previous_secret_enc) for r in await conn.execute(query)]


async def reseal(
    engine: AsyncEngine, endpoint_id: uuid.UUID, old: str, new: str, old_prev: str | None, new_prev: str | None
) -> bool:
    """Swap one endpoint's sealed secrets if they are still ``old``/``old_prev`` (a rotation may have won)."""
    statement = (
        update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.secret_enc == old,
            webhook_endpoints.c.previous_secret_enc.is_not_distinct_from(old_prev),
        )
        .values(secret_enc=new, previous_secret_enc=new_prev)
    )
    with db_errors():
        async with engine.begin() as conn:
            return bool((await conn.execute(statement)).rowcount)


# --- the pump's lease (worker side) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A held pump lease: ``token`` is the ``pump_until`` it set; the endpoint as read with it."""

    token: datetime
    endpoint: EndpointRecord


async def take_pump(conn: AsyncConnection, endpoint_id: uuid.UUID, lease_s: float) -> Lease | None:
    """The endpoint's pump lease, if nobody holds it (or theirs expired) and it is not deleted."""
    pump_until = webhook_endpoints.c.pump_until
    statement = (
        update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.deleted_at.is_(None),
            pump_until.is_(None) | (pump_until < func.now()),
        )
        .values(pump_until=func.now() + timedelta(seconds=lease_s))
        .returning(pump_until, *ENDPOINT_COLUMNS)
    )
    row = (await conn.execute(statement)).first()
    return Lease(row[0], endpoint_record(row[1:])) if row is not None else None


async def renew_pump(conn: AsyncConnection, lease: Lease, lease_s: float) -> Lease | None:
    """Extend a held lease (re-reading the URL and secrets); None once it is lost or the endpoint deleted."""
    statement = (
        update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id == lease.endpoint.id,
            webhook_endpoints.c.pump_until == lease.token,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .values(pump_until=func.now() + timedelta(seconds=lease_s))
        .returning(webhook_endpoints.c.pump_until, *ENDPOINT_COLUMNS)
    )
    row = (await conn.execute(statement)).first()
    return Lease(row[0], endpoint_record(row[1:])) if row is not None else None


async def release_pump(conn: AsyncConnection, lease: Lease) -> None:
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == lease.endpoint.id, webhook_endpoints.c.pump_until == lease.token)
        .values(pump_until=None)
    )
