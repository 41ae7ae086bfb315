"""Draw metrics, written by worker processes (multiprocess mode): draws finished by outcome and how long
drawing took. A draw that waits for its beacon counts nothing until it finishes.

The outcomes are exported from the start (at 0), so ``increase()`` sees the first one after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

#: a draw's final state (draws/status.py's FINAL)
OUTCOMES = ("completed", "refused")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class DrawMetrics:
    finished: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> DrawMetrics:
        finished = Counter(
            "satworks_draws_finished",
            "Draws that reached a final state by this worker, by outcome (completed, refused).",
            ("outcome",),
            registry=registry,
        )
        for outcome in OUTCOMES:
            finished.labels(outcome)
        duration = Histogram(
            "satworks_draw_duration_seconds",
            "Completed draws: loading the entries, selecting the winners, building and storing the proof.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        return cls(finished, duration)
