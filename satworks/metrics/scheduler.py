"""Scheduler metrics, served by each ``satworks scheduler`` process on its own port.

The per-task gauges are read from Postgres by every instance, so a standby shows the same values
as the leader; ``satworks_scheduler_is_leader`` says which one acts (sum over instances: 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True)
class SchedulerMetrics:
    is_leader: Gauge
    last_run: Gauge
    last_success: Gauge
    next_run: Gauge
    submit_failures: Counter
    canary_latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> SchedulerMetrics:
        def task_gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"satworks_schedule_{name}_timestamp_seconds", doc, ["task"], registry=registry)

        return cls(
            is_leader=Gauge(
                "satworks_scheduler_is_leader", "1 while this scheduler holds the leader lock.", registry=registry
            ),
            last_run=task_gauge("last_run", "Slot (Unix time) of the task's latest submitted run."),
            last_success=task_gauge("last_success", "When the task's latest successful run finished (Unix time)."),
            next_run=task_gauge("next_run", "The task's next slot (Unix time)."),
            submit_failures=Counter(
                "satworks_schedule_submit_failures",
                "Slots whose job could not be submitted (Postgres or broker unavailable).",
                ["task"],
                registry=registry,
            ),
            canary_latency=Histogram(
                "satworks_canary_latency_seconds",
                "End-to-end latency of scheduled canaries: job created to job finished.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
