"""Notification metrics, written by worker processes: webhook attempts and email sends by outcome.

Labels are bounded: the outcome only (never an app, an endpoint, a URL or an address).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

#: an attempt's result: ``retrying`` (another attempt is scheduled), ``dead`` (it was the last one)
DELIVERY_OUTCOMES = ("delivered", "retrying", "failed", "dead")
EMAIL_OUTCOMES = ("sent", "retrying", "failed", "dead")


@dataclass(frozen=True)
class NotifyMetrics:
    deliveries: Counter
    emails: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> NotifyMetrics:
        deliveries = Counter(
            "satworks_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retrying, failed, dead).",
            ("outcome",),
            registry=registry,
        )
        emails = Counter(
            "satworks_emails",
            "Email sends by outcome (sent, retrying, failed, dead).",
            ("outcome",),
            registry=registry,
        )
        for outcome in DELIVERY_OUTCOMES:
            deliveries.labels(outcome)
        for outcome in EMAIL_OUTCOMES:
            emails.labels(outcome)
        return cls(deliveries, emails)
