"""Apps and their API keys. A key is ``sw_<key_id>_<secret>``; only SHA-256 of the secret is stored.

The secret carries 256 random bits, so a fast hash is enough: nobody can brute-force it offline,
and lookups by ``key_id`` keep verification to one constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from satworks.db.schema import apps
from satworks.errors import Conflict, NotFound

SCOPES = ("jobs", "admin")


@dataclass(frozen=True)
class AppKey:
    app_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "sw" or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1], parts[2]


def verify(secret: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), key_hash)


def by_key_id(key_id: str) -> Select[tuple[uuid.UUID, str, str, list[str], int | None]]:
    return select(apps.c.id, apps.c.name, apps.c.key_hash, apps.c.scopes, apps.c.rate_limit_per_minute).where(
        apps.c.key_id == key_id, apps.c.revoked_at.is_(None)
    )


def create(conn: Connection, name: str, *, admin: bool, rate_limit_per_minute: int | None) -> str:
    """Insert an app and return its API key, which is shown once and never stored."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
    scopes = ["jobs", "admin"] if admin else ["jobs"]
    try:
        conn.execute(
            insert(apps).values(
                id=uuid.uuid4(),
                name=name,
                key_id=key_id,
                key_hash=hash_secret(secret),
                scopes=scopes,
                rate_limit_per_minute=rate_limit_per_minute,
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"an app named {name!r} already exists") from exc
    return f"sw_{key_id}_{secret}"


def revoke(conn: Connection, name: str) -> None:
    done = conn.execute(
        update(apps).where(apps.c.name == name, apps.c.revoked_at.is_(None)).values(revoked_at=func.now())
    )
    if done.rowcount == 0:
        raise NotFound(f"no active app named {name!r}")


def listing(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(apps.c.name, apps.c.scopes, apps.c.rate_limit_per_minute, apps.c.created_at, apps.c.revoked_at).order_by(
            apps.c.created_at
        )
    ).mappings()
    return [dict(row) for row in rows]
