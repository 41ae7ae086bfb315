"""Job metrics, written by worker processes (multiprocess mode). The intake counts what it enqueues
itself (``HttpMetrics.enqueued``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

LABELS = ("type", "queue")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class JobMetrics:
    started: Counter
    succeeded: Counter
    failed: Counter
    retried: Counter
    dead: Counter
    errors: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> JobMetrics:
        def counter(name: str, doc: str) -> Counter:
            return Counter(f"satworks_jobs_{name}", doc, LABELS, registry=registry)

        return cls(
            started=counter("started", "Job runs started by a worker."),
            succeeded=counter("succeeded", "Job runs that succeeded."),
            failed=counter("failed", "Jobs failed for good by a permanent error."),
            retried=counter("retried", "Job runs that failed and were scheduled for a retry."),
            dead=counter("dead", "Jobs dead-lettered: retries exhausted, crash loop or age limit."),
            errors=Counter(
                "satworks_job_errors",
                "Job runs that raised, by error code (satworks/errors.py; `unexpected` for anything else).",
                (*LABELS, "code"),
                registry=registry,
            ),
            duration=Histogram(
                "satworks_job_duration_seconds",
                "Wall time of one job run.",
                LABELS,
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
        )
