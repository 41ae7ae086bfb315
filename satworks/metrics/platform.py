"""Metrics of platform jobs (reconciler, retention), written by worker processes (multiprocess mode)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

REPAIR_KINDS = ("requeued", "expired", "outcome_lost")
RETAINED_TABLES = ("jobs", "payment_audit", "app_events", "webhook_receipts", "schedule_runs")


@dataclass(frozen=True)
class PlatformMetrics:
    repairs: Counter
    broker_wipes: Counter
    retention_deleted: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> PlatformMetrics:
        """Every label value is exported from the start (at 0), so ``increase()`` sees the first repair."""
        metrics = cls._counters(registry)
        for kind in REPAIR_KINDS:
            metrics.repairs.labels(kind)
        for table in RETAINED_TABLES:
            metrics.retention_deleted.labels(table)
        return metrics

    @classmethod
    def _counters(cls, registry: CollectorRegistry | None) -> PlatformMetrics:
        return cls(
            repairs=Counter(
                "satworks_reconciler_repairs",
                "Jobs the reconciler repaired, by kind: requeued (message lost), expired (message lost past its"
                " age limit), outcome_lost (running past its time limit with no message).",
                ["kind"],
                registry=registry,
            ),
            broker_wipes=Counter(
                "satworks_reconciler_broker_wipes",
                "Runs that found the broker had lost its data (epoch sentinel missing or older).",
                registry=registry,
            ),
            retention_deleted=Counter(
                "satworks_retention_deleted_rows", "Rows deleted by retention, by table.", ["table"], registry=registry
            ),
        )
