"""Typed settings, read once from ``SATWORKS_*`` environment variables at the edge (cli, worker entry).

Everything below the edge receives a ``Settings`` (or the values it needs); nothing reads ``os.environ``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from satworks.scheduler import specs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SATWORKS_", env_file=None, extra="forbid", frozen=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/satworks"
    db_pool_size: int = Field(10, ge=1)
    redis_url: str = "redis://127.0.0.1:6379/11"
    broker_url: str | None = None
    queue_prefix: str = Field("", pattern=r"^[a-z0-9_]*$")

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=2, le=512)  # nesting of JSON bodies (objects and arrays); deeper: 400
    # A request's head must arrive within this of the connection opening or of the previous response
    # (closed otherwise; also how long an idle keep-alive connection stays open).
    http_header_timeout_s: float = Field(15.0, gt=0)
    http_body_timeout_s: float = Field(30.0, gt=0)  # a request's body must arrive within this (408, closed)
    http_max_connections: int = Field(1000, ge=1)  # per web process; more are closed at once, unread
    # Proxies (addresses or CIDR networks) whose X-Forwarded-For is believed, hop by hop from the right.
    trusted_proxies: list[IPvAnyNetwork] = []

    default_rate_limit_per_minute: int = Field(600_000, ge=1)
    auth_failures_per_minute: int = Field(30, ge=1)
    auth_cache_ttl_s: float = Field(5.0, ge=0)
    intake_batch_max: int = Field(256, ge=1)

    # Worker side.
    heartbeat_timeout_ms: int = Field(15_000, ge=1_000)
    reaper_interval_ms: int = Field(5_000, ge=100)
    max_crashes: int = Field(3, ge=1)
    default_time_limit_ms: int = Field(10 * 60_000, ge=1_000)
    default_max_age_ms: int = Field(24 * 3600_000, ge=1_000)
    status_batch_max: int = Field(512, ge=1)
    status_gather_ms: float = Field(1.0, ge=0, le=100)
    # Claim the jobs waiting for a busy worker's threads ahead (``workers/middleware/tracking.py``)
    # while its jobs run this long or less on average; 0 turns claims ahead off.
    claim_ahead_max_run_ms: float = Field(20.0, ge=0, le=3_600_000)
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(9191, ge=1, le=65535)
    canary_chaos: bool = False

    # Bitcoin (on-chain payments).
    bitcoin_network: Literal["mainnet", "testnet", "signet", "regtest"] = "regtest"
    bitcoind_rpc_url: str = "http://satworks:satworks@127.0.0.1:18443"
    bitcoind_rpc_timeout_s: float = Field(10.0, gt=0)
    bitcoind_webhook_token: str | None = Field(None, min_length=16)
    payment_webhook_secret: str | None = Field(None, min_length=16)
    payment_webhook_tolerance_s: int = Field(300, ge=1)
    payment_check_min_ms: int = Field(2_000, ge=10)
    payment_check_max_ms: int = Field(60_000, ge=10)

    # Lightning: lnd over gRPC (defaults: the merchant node of `satworks devnode lnd`).
    lnd_grpc_host: str = "127.0.0.1:10009"
    lnd_tls_cert_path: str = ".local/lnd/merchant/tls.cert"
    lnd_macaroon_path: str = ".local/lnd/merchant/admin.macaroon"
    lnd_rpc_timeout_s: float = Field(10.0, gt=0)
    # `satworks lnd-listener`: reconnects with jittered backoff from 0.5 s up to this; metrics server.
    lnd_reconnect_max_s: float = Field(30.0, ge=1)
    lnd_listener_metrics_host: str = "127.0.0.1"
    lnd_listener_metrics_port: int = Field(9195, ge=1, le=65535)
    # Outgoing webhooks (docs/webhooks.md). Addresses that are not globally routable (loopback, private,
    # link-local incl. 169.254.169.254, multicast, ...) are refused after DNS unless allowed here.
    webhook_connect_timeout_s: float = Field(5.0, gt=0)
    webhook_timeout_s: float = Field(15.0, gt=0)  # the whole attempt: connect, send, answer, body head
    webhook_response_max_bytes: int = Field(4096, ge=0)  # read and kept of each answer's body
    webhook_retry_after_max_s: int = Field(3600, ge=0)  # a receiver's Retry-After is honoured up to this
    webhook_allowed_networks: list[IPvAnyNetwork] = []  # e.g. ["127.0.0.0/8", "::1/128"] in the quick start
    webhook_allowed_hosts: list[str] = []  # host names that may resolve to any unicast address
    webhook_retry_min_ms: int = Field(5_000, ge=1)
    webhook_retry_max_ms: int = Field(3_600_000, ge=1)
    webhook_retry_window_s: int = Field(86_400, ge=1)
    # Endpoints' signing secrets are stored encrypted with this Fernet key (32 url-safe base64 bytes;
    # `satworks webhooks new-key` makes one). Required on mainnet; unset elsewhere, endpoints cannot be
    # registered. Old keys still decrypt (for re-keying); the first key encrypts.
    webhook_secret_key: SecretStr | None = None
    webhook_secret_old_keys: list[SecretStr] = []
    webhook_secret_overlap_s: int = Field(86_400, ge=0, le=7 * 86_400)  # both secrets sign after a rotation
    webhook_max_endpoints: int = Field(16, ge=1, le=1000)  # per app

    # Email over SMTP. security: none | starttls | tls (implicit, port 465). The quick start uses
    # `satworks devnode smtp` on 1025. Sessions are capped across all workers by smtp_max_sessions.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_ca_file: str | None = None  # PEM bundle for a relay with a private CA
    smtp_helo_name: str | None = None  # EHLO name; default: this machine's FQDN
    smtp_connect_timeout_s: float = Field(10.0, gt=0)
    smtp_timeout_s: float = Field(30.0, gt=0)  # each command's answer
    smtp_max_sessions: int = Field(5, ge=1)
    email_from: str = "satworks <noreply@satworks.localhost>"
    email_message_id_domain: str | None = None  # Message-IDs are <email id@this>; default: email_from's domain
    email_max_recipients: int = Field(50, ge=1, le=1000)
    email_retry_min_ms: int = Field(30_000, ge=1)
    email_retry_max_ms: int = Field(3_600_000, ge=1)
    email_retry_window_s: int = Field(86_400, ge=1)

    # Raffle draws (docs/draws.md). Submissions past these limits are refused with 422; a draw's body may be
    # larger than max_body_bytes, up to draw_max_body_bytes (1,000,000 entries with emails: about 85 MB).
    draw_max_body_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    draw_max_entries: int = Field(1_000_000, ge=1)
    draw_max_total_tickets: int = Field(1_000_000_000, ge=1, le=2**53 - 1)
    draw_max_id_bytes: int = Field(128, ge=1, le=1024)
    draw_max_winners: int = Field(10_000, ge=1)
    draw_default_confirmations: int = Field(6, ge=1, le=100)
    # Fewest confirmations a draw may ask for; default 6 on mainnet, 1 on the test networks.
    draw_min_confirmations: int | None = Field(None, ge=1, le=100)
    draw_prepare_processes: int = Field(1, ge=1, le=16)  # processes validating large draws beside the web process
    # Where players reach this service, for the public verification links (default: the API request's origin).
    public_base_url: str | None = Field(None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")

    # Scheduler (``satworks scheduler``): one leader among all that run; docs/operations.md "Scheduler".
    scheduler_takeover_s: float = Field(15.0, ge=3, description="a standby leads within this after the leader died")
    scheduler_check_s: float = Field(2.0, gt=0, le=30, description="the leader checks its lock connection this often")
    scheduler_retry_s: float = Field(3.0, gt=0, le=60, description="a standby tries to take the lock this often")
    scheduler_instance: str | None = Field(None, max_length=40, description="this scheduler's name; default host:pid")
    scheduler_metrics_host: str = "127.0.0.1"
    scheduler_metrics_port: int = Field(9194, ge=1, le=65535)
    # One per task of satworks/scheduler/tasks.py: "off", "interval:<n>[s|m|h|d]" or "cron:<5 fields, UTC>".
    schedule_canary: str = "interval:60"
    schedule_reconcile: str = "interval:60"
    schedule_payments_sweep: str = "interval:300"
    schedule_payment_checks: str = "interval:120"
    schedule_retention: str = "cron:17 3 * * *"
    schedule_daily_reports: str = "cron:5 0 * * *"

    # Reconciler (docs/operations.md "Reconciler"): a waiting job is looked for in the broker once it is
    # due this long (never one enqueued a moment ago); at most reconcile_batch candidates per run, and
    # a queue holding more than reconcile_scan_max messages is not scanned.
    reconcile_overdue_s: float = Field(120.0, ge=10)
    reconcile_batch: int = Field(1000, ge=1)
    reconcile_scan_max: int = Field(200_000, ge=1)
    # Payments upkeep: a stranded `creating` request's address job is re-sent with doubling gaps up to
    # this; an open request not evaluated for payment_stale_s gets its check chain again.
    stranded_payment_resend_max_s: float = Field(900.0, ge=30)
    payment_stale_s: float = Field(600.0, ge=30)
    payment_checks_batch: int = Field(500, ge=1)
    # Retention (days; bounded batches: at most retention_max_batches of retention_batch_rows per table and run).
    retention_jobs_days: int = Field(30, ge=1)
    retention_payment_audit_days: int = Field(365, ge=1)
    retention_events_days: int = Field(30, ge=1)
    retention_webhook_receipts_days: int = Field(7, ge=1)
    retention_batch_rows: int = Field(1000, ge=1)
    retention_max_batches: int = Field(100, ge=1)
    schedule_notify_sweep: str = "interval:30"
    schedule_lightning_sweep: str = "interval:60"
    schedule_draws_due: str = "interval:30"

    @field_validator("*")
    @classmethod
    def _schedule_spec(cls, value: object, info: ValidationInfo) -> object:
        """Every ``schedule_<task>`` setting is a valid spec, stored in its normal form."""
        if info.field_name is not None and info.field_name.startswith("schedule_") and isinstance(value, str):
            return specs.parse(value).text
        return value

    @model_validator(mode="after")
    def _reaper_faster_than_heartbeat(self) -> Settings:
        if self.reaper_interval_ms * 2 > self.heartbeat_timeout_ms:
            raise ValueError("reaper_interval_ms must be at most half of heartbeat_timeout_ms")
        return self

    @model_validator(mode="after")
    def _draw_confirmations(self) -> Settings:
        if self.draw_default_confirmations < self.effective_draw_min_confirmations:
            raise ValueError("draw_default_confirmations must be at least draw_min_confirmations (6 on mainnet)")
        return self

    @model_validator(mode="after")
    def _webhook_retry_bounds(self) -> Settings:
        if self.webhook_retry_min_ms > self.webhook_retry_max_ms:
            raise ValueError("webhook_retry_min_ms must not exceed webhook_retry_max_ms")
        return self

    @field_validator("webhook_secret_key", "webhook_secret_old_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | list[SecretStr] | None) -> SecretStr | list[SecretStr] | None:
        from cryptography.fernet import Fernet

        for key in value if isinstance(value, list) else [value] if value is not None else []:
            try:
                Fernet(key.get_secret_value())
            except (ValueError, TypeError):
                raise ValueError("must be a Fernet key: 32 url-safe base64-encoded bytes") from None
        return value

    @model_validator(mode="after")
    def _secret_key_on_mainnet(self) -> Settings:
        if self.bitcoin_network == "mainnet" and self.webhook_secret_key is None:
            raise ValueError(
                "webhook_secret_key is required on mainnet (webhook signing secrets are encrypted with it)"
            )
        return self

    @model_validator(mode="after")
    def _retry_bounds(self) -> Settings:
        if self.email_retry_min_ms > self.email_retry_max_ms:
            raise ValueError("email_retry_min_ms must not exceed email_retry_max_ms")
        return self

    @model_validator(mode="after")
    def _scheduler_timings(self) -> Settings:
        retry_s, check_s = self.scheduler_retry_s, self.scheduler_check_s
        if self.scheduler_takeover_s < max(retry_s + 2 * check_s + 2, 2 * retry_s + 2):
            raise ValueError(
                "scheduler_takeover_s must be at least scheduler_retry_s + 2 * scheduler_check_s + 2 and"
                " 2 * scheduler_retry_s + 2 (Postgres ends a lock session after scheduler_takeover_s -"
                " scheduler_retry_s - 1 s of silence, which must leave room for the leader's checks and"
                " the standbys' retries)"
            )
        return self

    @property
    def scheduler_idle_timeout_s(self) -> float:
        """Postgres ends a leader's lock session after this much silence, which frees the lock."""
        return self.scheduler_takeover_s - self.scheduler_retry_s - 1

    @property
    def scheduler_lease_s(self) -> float:
        """A leader acts only this long after the send of its last good check (< the idle timeout)."""
        return self.scheduler_idle_timeout_s - 1

    @property
    def effective_draw_min_confirmations(self) -> int:
        """``draw_min_confirmations``, or 6 on mainnet and 1 on the test networks."""
        if self.draw_min_confirmations is not None:
            return self.draw_min_confirmations
        return 6 if self.bitcoin_network == "mainnet" else 1

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def broker_kind(self) -> Literal["redis", "rabbitmq"]:
        return "rabbitmq" if self.effective_broker_url.startswith(("amqp://", "amqps://")) else "redis"
