"""The draws' tables (on the shared ``metadata``; migration ``0005_draws`` creates them).

- ``draws``: one row per draw; what the commitment covers never changes (a trigger refuses it) and a
  final draw (completed, refused) is never updated again.
- ``draw_entries``: the frozen entries as one compressed value (``draws.packed``), emails only for
  ``notify``.
- ``draw_results``: at most one row per draw, ever (its primary key), never updated: the one result.
- ``draw_audit``: every state change.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from satworks.db.schema import metadata, one_of
from satworks.draws.status import OPEN, DrawStatus

OPEN_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(OPEN)) + ")"

draws = Table(
    "draws",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("raffle_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("algorithm", String(32), nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("network", String(16), nullable=False),
    Column("beacon_height", BigInteger, nullable=False),
    Column("required_confirmations", Integer, nullable=False),
    Column("k", Integer, nullable=False),
    Column("entries_count", Integer, nullable=False),
    Column("total_tickets", BigInteger, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("notify", Boolean, nullable=False),
    Column("public_token", String(32), nullable=False, unique=True),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("block_hash", String(64)),  # the beacon block seen last; final once completed
    Column("block_confirmations", Integer),
    Column("checked_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("checked_tip", BigInteger),  # the node's tip read by the intake after the commit
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('draws_seq')")),
    UniqueConstraint("app_id", "idempotency_key", name="draws_app_idempotency_key"),
    CheckConstraint(one_of("status", DrawStatus), name="draws_status_valid"),
    CheckConstraint("beacon_height BETWEEN 0 AND 4294967295", name="draws_height_valid"),
    CheckConstraint("required_confirmations >= 1", name="draws_confirmations_valid"),
    CheckConstraint("k >= 1 AND k <= entries_count AND total_tickets >= entries_count", name="draws_counts_valid"),
    CheckConstraint("(status = 'completed') = (completed_at IS NOT NULL)", name="draws_completed_at"),
    CheckConstraint(
        "status NOT IN ('confirming', 'completed') OR block_hash IS NOT NULL", name="draws_block_when_seen"
    ),
    Index("draws_app_listing", "app_id", "seq"),
    Index("draws_app_raffle_listing", "app_id", "raffle_id", "seq"),
    Index("draws_open", "network", "beacon_height", postgresql_where=text(f"status IN {OPEN_SQL}")),
)

draw_entries = Table(
    "draw_entries",
    metadata,
    Column("draw_id", UUID(as_uuid=True), ForeignKey("draws.id", ondelete="CASCADE"), primary_key=True),
    Column("entries", LargeBinary, nullable=False),
    Column("emails", LargeBinary),
    Column("emails_count", Integer, nullable=False, server_default=text("0")),
)

draw_results = Table(
    "draw_results",
    metadata,
    Column("draw_id", UUID(as_uuid=True), ForeignKey("draws.id"), primary_key=True),
    Column("block_hash", String(64), nullable=False),
    Column("confirmations", Integer, nullable=False),
    Column("winners", JSONB, nullable=False),
    Column("proof_gz", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

draw_audit = Table(
    "draw_audit",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("draw_id", UUID(as_uuid=True), ForeignKey("draws.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("from_status", String(16)),  # NULL: the commit
    Column("to_status", String(16), nullable=False),
    Column("block_hash", String(64)),
    Column("confirmations", Integer),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)
