"""What a delivery becomes after an attempt, and how signing secrets are kept: pure rules, no services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from satworks import clock
from satworks.db.webhook_deliveries import Due
from satworks.db.webhook_endpoints import EndpointRecord
from satworks.integrations.webhooks.outcome import DeliveryAttempt, Outcome
from satworks.jobs.webhooks import _decide
from satworks.webhooks.events import WebhookEvent
from satworks.webhooks.schedule import RetrySchedule
from satworks.webhooks.secrets import SecretBox, SecretsNotConfigured, UnreadableSecret, new_secret
from satworks.webhooks.status import DeliveryStatus

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule(min_backoff_ms=1_000, max_backoff_ms=60_000, window_ms=3_600_000)


def _due(window_attempts: int = 0, window_started_at: datetime | None = None) -> Due:
    event = WebhookEvent("evt_1", "job.succeeded", NOW, {})
    return Due(uuid.uuid4(), event, window_attempts, window_started_at)


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utcnow", lambda: NOW)


def test_a_2xx_is_delivered_and_schedules_nothing() -> None:
    recorded, delay = _decide(SCHEDULE, _due(), DeliveryAttempt(Outcome.DELIVERED, 204, 12, "ok"), NOW)
    assert (recorded.status, recorded.outcome, delay, recorded.next_attempt_at) == (
        DeliveryStatus.DELIVERED,
        "delivered",
        None,
        None,
    )


def test_a_final_answer_fails_without_a_retry() -> None:
    recorded, delay = _decide(SCHEDULE, _due(), DeliveryAttempt(Outcome.FAILED, 404, 5, "nope"), NOW)
    assert (recorded.status, delay) == (DeliveryStatus.FAILED, None)


def test_a_retryable_answer_schedules_the_next_attempt_within_the_ceiling_and_after_retry_after() -> None:
    recorded, delay = _decide(SCHEDULE, _due(), DeliveryAttempt(Outcome.RETRY, 503, 5), NOW)
    assert recorded.status is DeliveryStatus.RETRYING and delay is not None and 1_000 <= delay <= 2_000
    assert recorded.next_attempt_at == NOW + timedelta(milliseconds=delay)
    asked, asked_delay = _decide(SCHEDULE, _due(), DeliveryAttempt(Outcome.RETRY, 429, 5, retry_after_s=30), NOW)
    assert asked_delay == 30_000 and asked.status is DeliveryStatus.RETRYING


def test_a_retry_after_the_window_closed_is_dead() -> None:
    started = NOW - timedelta(hours=2)
    recorded, delay = _decide(SCHEDULE, _due(40, started), DeliveryAttempt(Outcome.RETRY, 500, 5), NOW)
    assert (recorded.status, delay, recorded.outcome) == (DeliveryStatus.DEAD, None, "retry")


def test_a_nul_in_the_answer_is_recorded_as_a_replacement_character() -> None:
    recorded, _ = _decide(SCHEDULE, _due(), DeliveryAttempt(Outcome.DELIVERED, 200, 1, "a\x00b"), NOW)
    assert recorded.response_head == "a\ufffdb"


def test_secrets_are_sealed_opened_and_resealed_under_a_new_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secret = new_secret()
    sealed = SecretBox([old]).seal(secret)
    assert secret not in sealed and SecretBox([old]).open(sealed) == secret
    both = SecretBox([new, old])
    resealed = both.reseal(sealed)
    assert SecretBox([new]).open(resealed) == secret
    with pytest.raises(UnreadableSecret):
        SecretBox([new]).open(sealed)
    with pytest.raises(SecretsNotConfigured):
        SecretBox([]).seal(secret)


def test_the_previous_secret_signs_only_until_its_overlap_ends() -> None:
    endpoint = EndpointRecord(
        id=uuid.uuid4(),
        app_id=uuid.uuid4(),
        url="https://shop.example/hook",
        events=["*"],
        created_at=NOW,
        rotated_at=NOW,
        previous_expires_at=NOW + timedelta(hours=1),
        deleted_at=None,
        seq=1,
        secret_enc="sealed-now",
        previous_secret_enc="sealed-before",
    )
    assert endpoint.sealed_secrets(NOW) == ["sealed-now", "sealed-before"]
    assert endpoint.sealed_secrets(NOW + timedelta(hours=2)) == ["sealed-now"]
    assert "sealed-now" not in repr(endpoint) and "sealed-before" not in repr(endpoint)
