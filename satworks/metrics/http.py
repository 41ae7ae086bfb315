"""Intake metrics: requests by route, method and status, latency, jobs handed to the broker, and the
serving processes. With ``satworks web --processes N`` they live in a multiprocess directory: counters
and histograms are summed over the processes, gauges read at scrape time keep the most recent value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from satworks.metrics.jobs import LABELS

#: the ``method`` label of ``satworks_payment_requests`` (payments/request.py's ``method``)
PAYMENT_METHODS = ("onchain", "lightning")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True)
class HttpMetrics:
    requests: Counter
    latency: Histogram
    enqueued: Counter
    queue_messages: Gauge
    payment_requests: Gauge
    processes: Gauge
    dead_letter_jobs: Gauge
    failed_jobs: Gauge
    connections_refused: Counter
    request_timeouts: Counter
    head_timeouts: Counter
    # Labelled children met so far: ``labels()`` takes a lock and builds a key on every call, while the
    # sets of (route, method, status) and (job type, queue) are small.
    _children: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def request_children(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        """The ``requests`` and ``latency`` children of a request's labels."""
        key = ("request", route, method, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
        return found

    def enqueued_child(self, job_type: str, queue: str) -> Counter:
        """The ``enqueued`` child of a job type and a queue (without the deployment's prefix)."""
        key = ("enqueued", job_type, queue)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = self.enqueued.labels(job_type, queue)
        return found

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HttpMetrics:
        return cls(
            requests=Counter(
                "satworks_http_requests",
                "HTTP requests answered.",
                ("route", "method", "status"),
                registry=registry,
            ),
            latency=Histogram(
                "satworks_http_request_duration_seconds",
                "HTTP request latency.",
                ("route", "method"),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            enqueued=Counter(
                "satworks_jobs_enqueued", "Jobs accepted and handed to the broker.", LABELS, registry=registry
            ),
            payment_requests=Gauge(
                "satworks_payment_requests",
                "Payment requests by method (onchain, lightning) and status, read at scrape time.",
                ("method", "status"),
                registry=registry,
                multiprocess_mode="mostrecent",
            ),
            dead_letter_jobs=Gauge(
                "satworks_dead_letter_jobs",
                "Jobs dead now (retries exhausted, crash loop, age limit), read from Postgres at scrape time.",
                ("queue",),
                registry=registry,
                multiprocess_mode="mostrecent",
            ),
            failed_jobs=Gauge(
                "satworks_failed_jobs",
                "Jobs failed now by a permanent error, read from Postgres at scrape time.",
                ("queue",),
                registry=registry,
                multiprocess_mode="mostrecent",
            ),
            connections_refused=Counter(
                "satworks_http_connections_refused",
                "Connections closed unread: the process had SATWORKS_HTTP_MAX_CONNECTIONS open.",
                registry=registry,
            ),
            head_timeouts=Counter(
                "satworks_http_head_timeouts",
                "Connections closed with a request head still arriving after SATWORKS_HTTP_HEADER_TIMEOUT_S.",
                registry=registry,
            ),
            request_timeouts=Counter(
                "satworks_http_request_timeouts",
                "Requests answered 408 and closed: the body took longer than SATWORKS_HTTP_BODY_TIMEOUT_S.",
                registry=registry,
            ),
            queue_messages=Gauge(
                "satworks_queue_messages",
                "Messages in the broker, read at scrape time.",
                ("queue", "state"),
                registry=registry,
                multiprocess_mode="mostrecent",
            ),
            processes=Gauge(
                "satworks_http_processes",
                "Intake processes serving (each sets 1; summed over the live ones).",
                registry=registry,
                multiprocess_mode="livesum",
            ),
        )
