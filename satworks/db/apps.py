"""Apps and their API keys. A key is ``sw_<key_id>_<secret>``; only SHA-256 of the secret is stored.

The secret carries 256 random bits, so a fast hash is enough: nobody can brute-force it offline,
and lookups by ``key_id`` keep verification to one constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from satworks.audit import AuditKind
from satworks.db import audit
from satworks.db.engine import db_errors
from satworks.db.schema import apps
from satworks.errors import Conflict, NotFound


@dataclass(frozen=True)
class AppKey:
    app_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None


@dataclass(frozen=True)
class StoredKey:
    """An active app's key as stored: its app, and the hash its secret must match."""

    key: AppKey
    key_hash: str


@dataclass(frozen=True)
class AppInfo:
    name: str
    scopes: list[str]
    rate_limit_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None
    daily_report: bool = False
    report_email: str | None = None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_KEY = re.compile(r"sw_([0-9a-f]{12})_([A-Za-z0-9-]{1,128})")


def split_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else ``None`` (nothing else reaches the database)."""
    match = _KEY.fullmatch(key)
    return (match[1], match[2]) if match else None


def verify(secret: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), key_hash)


async def key_by_id(engine: AsyncEngine, key_id: str) -> StoredKey | None:
    """The active (not revoked) key with this id, or ``None``."""
    query = select(apps.c.id, apps.c.name, apps.c.key_hash, apps.c.scopes, apps.c.rate_limit_per_minute).where(
        apps.c.key_id == key_id, apps.c.revoked_at.is_(None)
    )
    with db_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StoredKey(AppKey(row.id, row.name, frozenset(row.scopes), row.rate_limit_per_minute), row.key_hash)


async def active_id(engine: AsyncEngine, name: str) -> uuid.UUID:
    """The id of the active app named ``name``; raises ``NotFound``."""
    with db_errors():
        async with engine.connect() as conn:
            app_id = (
                await conn.execute(select(apps.c.id).where(apps.c.name == name, apps.c.revoked_at.is_(None)))
            ).scalar()
    if not isinstance(app_id, uuid.UUID):
        raise NotFound(f"no active app named {name!r}")
    return app_id


def create(
    conn: Connection,
    name: str,
    *,
    admin: bool,
    rate_limit_per_minute: int | None,
    daily_report: bool = False,
    report_email: str | None = None,
) -> str:
    """Insert an app and return its API key, which is shown once and never stored.

    ``report_email`` (already validated, ``emails.addresses``) receives its daily reports."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
    scopes = ["jobs", "admin"] if admin else ["jobs"]
    app_id = uuid.uuid4()
    try:
        conn.execute(
            insert(apps).values(
                id=app_id,
                name=name,
                key_id=key_id,
                key_hash=hash_secret(secret),
                scopes=scopes,
                rate_limit_per_minute=rate_limit_per_minute,
                daily_report=daily_report,
                report_email=report_email,
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"an active app named {name!r} already exists") from exc
    details = {"name": name, "scopes": scopes, "rate_limit_per_minute": rate_limit_per_minute}
    audit.record(conn, AuditKind.KEY_CREATED, actor=audit.CLI, app_id=app_id, data=details)
    return f"sw_{key_id}_{secret}"


def revoke(conn: Connection, name: str) -> None:
    app_id = conn.execute(
        update(apps)
        .where(apps.c.name == name, apps.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(apps.c.id)
    ).scalar()
    if app_id is None:
        raise NotFound(f"no active app named {name!r}")
    audit.record(conn, AuditKind.KEY_REVOKED, actor=audit.CLI, app_id=app_id, data={"name": name})


def set_daily_report(conn: Connection, name: str, enabled: bool, *, report_email: str | None = None) -> None:
    """Opt the active app ``name`` in to (or out of) the daily report, and set where it is emailed
    (``report_email`` None: the address stays as it was); raises ``NotFound``."""
    values: dict[str, object] = {"daily_report": enabled}
    if report_email is not None:
        values["report_email"] = report_email
    done = conn.execute(update(apps).where(apps.c.name == name, apps.c.revoked_at.is_(None)).values(**values))
    if done.rowcount == 0:
        raise NotFound(f"no active app named {name!r}")


def daily_report_apps(conn: Connection) -> list[uuid.UUID]:
    """Active apps that asked for the daily report."""
    rows = conn.execute(
        select(apps.c.id).where(apps.c.daily_report.is_(True), apps.c.revoked_at.is_(None)).order_by(apps.c.name)
    )
    return [row.id for row in rows]


def listing(conn: Connection) -> list[AppInfo]:
    rows = conn.execute(
        select(
            apps.c.name,
            apps.c.scopes,
            apps.c.rate_limit_per_minute,
            apps.c.created_at,
            apps.c.revoked_at,
            apps.c.daily_report,
            apps.c.report_email,
        ).order_by(apps.c.created_at)
    )
    return [AppInfo(*row) for row in rows]


INTERNAL_KEY_ID = "internal"
NO_KEY_HASH = "-" * 64  # never a hex digest: no secret verifies against it


def ensure_internal(engine: Engine, name: str) -> uuid.UUID:
    """The id of the platform-internal app ``name``, created once (concurrent callers agree on one row).

    Its key can never be used: no key names ``key_id`` ``internal`` (keys name 12 characters), its
    hash is no SHA-256 digest, and it has no scopes. Raises ``Conflict`` when an ordinary app holds
    the name.
    """
    with db_errors(), engine.begin() as conn:
        conn.execute(
            pg_insert(apps)
            .values(
                id=uuid.uuid4(), name=name, key_id=f"{INTERNAL_KEY_ID}-{name}"[:32], key_hash=NO_KEY_HASH, scopes=[]
            )
            .on_conflict_do_nothing()
        )
        row = conn.execute(
            select(apps.c.id, apps.c.key_hash).where(apps.c.name == name, apps.c.revoked_at.is_(None))
        ).one()
    if row.key_hash != NO_KEY_HASH:
        raise Conflict(f"an app named {name!r} exists with an API key; satworks needs that name")
    app_id: uuid.UUID = row.id
    return app_id
