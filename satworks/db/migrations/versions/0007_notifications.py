"""Notifications: webhook endpoints, deliveries and their attempts; the email outbox; receipts.

``app_events.delivered_at`` now means "fanned out into deliveries" (db/outbox.py), and a statement
trigger NOTIFYs ``satworks_app_events`` when a transaction that wrote events commits (the
workers' dispatcher listens), whoever wrote them.

Revision ID: 0007_notifications
Revises: 0004_sched_ops
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0007_notifications"
down_revision = "0004_sched_ops"
branch_labels = None
depends_on = None

DELIVERY_STATUSES = "('pending', 'retrying', 'delivered', 'failed', 'dead')"
EMAIL_STATUSES = "('queued', 'retrying', 'sent', 'failed', 'dead')"
NOTIFY_FUNCTION = """
CREATE FUNCTION satworks_app_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A statement that inserted nothing (e.g. the status writer's job events for unsubscribed apps)
    -- notifies nobody; NOTIFY itself is sent when the transaction commits.
    IF EXISTS (SELECT 1 FROM new_events) THEN
        PERFORM pg_notify('satworks_app_events', '');
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE webhook_endpoints_seq")
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", ARRAY(sa.Text), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("previous_secret_enc", sa.Text),
        sa.Column("previous_expires_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("rotated_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("pump_until", sa.DateTime(timezone=True)),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('webhook_endpoints_seq')")),
        sa.CheckConstraint("cardinality(events) >= 1", name="webhook_endpoints_events"),
        sa.CheckConstraint("length(url) <= 2048", name="webhook_endpoints_url_length"),
    )
    op.create_index(
        "webhook_endpoints_app", "webhook_endpoints", ["app_id", "seq"], postgresql_where=sa.text("deleted_at IS NULL")
    )

    op.execute("CREATE SEQUENCE webhook_deliveries_seq")
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('webhook_deliveries_seq')")),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("endpoint_id", UUID(as_uuid=True), sa.ForeignKey("webhook_endpoints.id"), nullable=False),
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("app_events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("window_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("window_started_at", sa.DateTime(timezone=True)),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_latency_ms", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_once"),
        sa.CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="webhook_deliveries_status_valid"),
        sa.CheckConstraint("attempts >= 0 AND window_attempts >= 0", name="webhook_deliveries_counters"),
    )
    op.create_index("webhook_deliveries_app", "webhook_deliveries", ["app_id", "seq"])
    op.create_index("webhook_deliveries_app_status", "webhook_deliveries", ["app_id", "status", "seq"])
    op.create_index(
        "webhook_deliveries_pending",
        "webhook_deliveries",
        ["endpoint_id", "event_id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "webhook_deliveries_retrying",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'retrying'"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            UUID(as_uuid=True),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("response_head", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("outcome IN ('delivered', 'retry', 'failed')", name="webhook_attempts_outcome"),
    )
    op.create_index("webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "id"])

    op.execute("CREATE SEQUENCE emails_seq")
    op.create_table(
        "emails",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('emails_seq')")),
        sa.Column("app_id", UUID(as_uuid=True), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("to_addrs", ARRAY(sa.Text), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("text_body", sa.Text, nullable=False),
        sa.Column("html_body", sa.Text),
        sa.Column("template", sa.String(64)),
        sa.Column("context", JSONB),
        sa.Column("message_id", sa.String(255), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("smtp_code", sa.Integer),
        sa.Column("smtp_reply", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("refused", JSONB),
        sa.UniqueConstraint("app_id", "idempotency_key", name="emails_app_idempotency_key"),
        sa.CheckConstraint(f"status IN {EMAIL_STATUSES}", name="emails_status_valid"),
        sa.CheckConstraint("cardinality(to_addrs) >= 1", name="emails_recipients"),
        sa.CheckConstraint("attempts >= 0", name="emails_counters"),
    )
    op.create_index("emails_app", "emails", ["app_id", "seq"])
    op.create_index("emails_app_status", "emails", ["app_id", "status", "seq"])
    op.create_index(
        "emails_open", "emails", ["next_attempt_at"], postgresql_where=sa.text("status IN ('queued', 'retrying')")
    )

    op.add_column("payment_requests", sa.Column("receipt_email", sa.Text))

    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER app_events_notify AFTER INSERT ON app_events REFERENCING NEW TABLE AS new_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION satworks_app_events_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER app_events_notify ON app_events")
    op.execute("DROP FUNCTION satworks_app_events_notify()")
    op.drop_column("payment_requests", "receipt_email")
    op.drop_table("emails")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    for sequence in ("emails_seq", "webhook_deliveries_seq", "webhook_endpoints_seq"):
        op.execute(f"DROP SEQUENCE {sequence}")
