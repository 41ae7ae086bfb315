"""Documents of the /v1/draws API (the OpenAPI document is generated from them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from satworks.db.draws import DrawRecord, public_path
from satworks.draws.status import DrawStatus


class BeaconOut(BaseModel):
    type: Literal["bitcoin_block"] = "bitcoin_block"
    network: str
    height: int
    block_hash: str | None = Field(description="The block at `height` as last seen; final once completed.")
    confirmations: int | None = Field(description="That block's confirmations when last checked.")


class WinnerOut(BaseModel):
    id: str
    ticket: int = Field(description="The winning ticket's number, 1-based, in canonical ticket order.")


class DrawOut(BaseModel):
    id: uuid.UUID
    raffle_id: str
    status: DrawStatus
    status_reason: str | None
    algorithm: str
    commitment: str = Field(description="SHA-256 of the canonical entries, k, the beacon and the draw id (hex).")
    beacon: BeaconOut
    confirmations: int = Field(description="Confirmations of the beacon block required before the draw.")
    k: int = Field(description="How many winners.")
    entries_count: int
    total_tickets: int
    winners: list[WinnerOut] = Field(description="In draw order; empty until completed.")
    metadata: dict[str, Any]
    notify: bool
    idempotency_key: str | None
    public_url: str = Field(description="The players' verification page: no API key needed, share it as is.")
    proof_url: str
    created_at: datetime
    checked_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_record(cls, draw: DrawRecord, *, public_base: str) -> DrawOut:
        """``public_base``: where players reach this service (``https://host``, no trailing slash)."""
        return cls(
            id=draw.id,
            raffle_id=draw.raffle_id,
            status=draw.status,
            status_reason=draw.status_reason,
            algorithm=draw.algorithm,
            commitment=draw.commitment,
            beacon=BeaconOut(
                network=draw.network,
                height=draw.beacon_height,
                block_hash=draw.block_hash,
                confirmations=draw.block_confirmations,
            ),
            confirmations=draw.required_confirmations,
            k=draw.k,
            entries_count=draw.entries_count,
            total_tickets=draw.total_tickets,
            winners=[WinnerOut(id=w["id"], ticket=w["ticket"]) for w in draw.winners or ()],
            metadata=draw.metadata,
            notify=draw.notify,
            idempotency_key=draw.idempotency_key,
            public_url=public_base + public_path(draw.public_token),
            proof_url=f"/v1/draws/{draw.id}/proof",
            created_at=draw.created_at,
            checked_at=draw.checked_at,
            completed_at=draw.completed_at,
        )


class DrawList(BaseModel):
    items: list[DrawOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class DrawListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raffle_id: str | None = Field(None, min_length=1, max_length=128)
    status: DrawStatus | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)
