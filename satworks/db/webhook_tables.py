"""The webhook tables (migration 0007): endpoints, one delivery per (endpoint, event), each attempt."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from satworks.db.schema import metadata, one_of
from satworks.webhooks.status import DeliveryStatus

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("secret_enc", Text, nullable=False),  # Fernet token (webhooks/secrets.py)
    Column("previous_secret_enc", Text),  # the secret before the last rotation, signing until previous_expires_at
    Column("previous_expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("rotated_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("pump_until", DateTime(timezone=True)),  # the pump's lease (and its token)
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('webhook_endpoints_seq')")),
    CheckConstraint("cardinality(events) >= 1", name="webhook_endpoints_events"),
    CheckConstraint("length(url) <= 2048", name="webhook_endpoints_url_length"),
    Index("webhook_endpoints_app", "app_id", "seq", postgresql_where=text("deleted_at IS NULL")),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('webhook_deliveries_seq')")),
    Column("app_id", UUID(as_uuid=True), ForeignKey("apps.id"), nullable=False),
    Column("endpoint_id", UUID(as_uuid=True), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", BigInteger, ForeignKey("app_events.id", ondelete="CASCADE"), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("window_attempts", Integer, nullable=False, server_default=text("0")),  # since window_started_at
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("window_started_at", DateTime(timezone=True)),  # first attempt of the window (or of the redelivery)
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("lease_until", DateTime(timezone=True)),  # an attempt of a retry in flight
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_latency_ms", Integer),
    Column("last_error", Text),
    UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_once"),
    CheckConstraint(one_of("status", DeliveryStatus), name="webhook_deliveries_status_valid"),
    CheckConstraint("attempts >= 0 AND window_attempts >= 0", name="webhook_deliveries_counters"),
    Index("webhook_deliveries_app", "app_id", "seq"),
    Index("webhook_deliveries_app_status", "app_id", "status", "seq"),
    Index("webhook_deliveries_pending", "endpoint_id", "event_id", postgresql_where=text("status = 'pending'")),
    Index("webhook_deliveries_retrying", "next_attempt_at", postgresql_where=text("status = 'retrying'")),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("delivery_id", UUID(as_uuid=True), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("response_head", Text, nullable=False),
    Column("error", Text),
    CheckConstraint("outcome IN ('delivered', 'retry', 'failed')", name="webhook_attempts_outcome"),
    Index("webhook_attempts_delivery", "delivery_id", "id"),
)
