"""Lightning metrics: the payment jobs' calls to lnd by outcome (worker pools, multiprocess mode) and
the invoice stream of ``satworks lnd-listener`` (its own port)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
#: the lightning jobs, the ``kind`` label
KINDS = ("create_invoice", "check", "sweep")
#: what a lightning job's visit to lnd came to (bounded label values)
OUTCOMES = (
    "changed",  # a status moved (or the invoice was created)
    "unchanged",
    "node_unavailable",  # transient: retried
    "auth_failed",  # lnd refused the macaroon: fix the configuration
    "config_error",  # the certificate or macaroon file cannot be used
    "not_found",  # lnd does not know the invoice
    "lnd_error",  # another refusal by lnd
    "error",  # anything else (database, broker, a bug)
)


@dataclass(frozen=True)
class LightningMetrics:
    calls: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> LightningMetrics:
        """Every kind and outcome is exported from the start (at 0), so ``increase()`` sees the first
        refusal after a restart."""
        calls = Counter(
            "satworks_lightning_checks",
            "Lightning payment jobs (create_invoice, check, sweep) by outcome of their lnd reads.",
            ("kind", "outcome"),
            registry=registry,
        )
        for kind in KINDS:
            for outcome in OUTCOMES:
                calls.labels(kind, outcome)
        return cls(calls)


@dataclass(frozen=True)
class ListenerMetrics:
    up: Gauge
    updates: Counter
    reconnects: Counter
    last_update: Gauge
    settle_lag: Histogram
    add_index: Gauge
    settle_index: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> ListenerMetrics:
        return cls(
            up=Gauge(
                "satworks_lnd_stream_up",
                "1 while the listener is subscribed to lnd's invoice stream (lnd answered GetInfo), else 0.",
                registry=registry,
            ),
            updates=Counter(
                "satworks_lnd_stream_updates",
                "Invoice updates received: `enqueued` a check for one of our requests, or `ignored`.",
                ("state", "outcome"),
                registry=registry,
            ),
            reconnects=Counter(
                "satworks_lnd_stream_reconnects",
                "Streams ended and subscribed again, by reason.",
                ("reason",),
                registry=registry,
            ),
            last_update=Gauge(
                "satworks_lnd_stream_last_update_timestamp_seconds",
                "When the latest invoice update was handed on (Unix time).",
                registry=registry,
            ),
            settle_lag=Histogram(
                "satworks_lnd_stream_lag_seconds",
                "Settlements: lnd's settle time (whole seconds) to the check being enqueued.",
                buckets=LAG_BUCKETS,
                registry=registry,
            ),
            add_index=Gauge(
                "satworks_lnd_stream_add_index", "The stored add_index the stream resumes from.", registry=registry
            ),
            settle_index=Gauge(
                "satworks_lnd_stream_settle_index",
                "The stored settle_index the stream resumes from.",
                registry=registry,
            ),
        )
