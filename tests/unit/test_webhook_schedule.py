"""Webhook delivery retries: full-jitter backoff inside a 24 h window, driven through Dramatiq's Retries."""

from __future__ import annotations

import random
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from satworks.errors import RetryWindowClosed
from satworks.settings import Settings
from satworks.webhooks.schedule import RetrySchedule, retry_when

SCHEDULE = RetrySchedule(min_backoff_ms=5_000, max_backoff_ms=3_600_000, window_ms=86_400_000)


def test_ceiling_doubles_from_twice_the_minimum_up_to_the_maximum() -> None:
    assert [SCHEDULE.ceiling_ms(r) for r in range(4)] == [10_000, 20_000, 40_000, 80_000]
    assert SCHEDULE.ceiling_ms(9) == 3_600_000 and SCHEDULE.ceiling_ms(10_000) == 3_600_000


@pytest.mark.parametrize("retries", [0, 1, 3, 8, 9, 20, 500])
def test_delays_are_spread_over_the_whole_range_between_minimum_and_ceiling(retries: int) -> None:
    rng = random.Random(retries)
    delays = [SCHEDULE.delay_ms(retries, 0, rng=rng) for _ in range(2_000)]
    ceiling = SCHEDULE.ceiling_ms(retries)
    assert all(d is not None and 5_000 <= d <= ceiling for d in delays)
    spread = ceiling - 5_000
    low = sum(1 for d in delays if d is not None and d < 5_000 + spread / 4)
    high = sum(1 for d in delays if d is not None and d > ceiling - spread / 4)
    assert low > 300 and high > 300  # full jitter: both ends of the range are used, not only 1x-2x


def test_retry_after_raises_the_delay_but_never_lowers_it() -> None:
    rng = random.Random(7)
    assert SCHEDULE.delay_ms(0, 0, retry_after_ms=600_000, rng=rng) == 600_000
    delay = SCHEDULE.delay_ms(0, 0, retry_after_ms=1, rng=rng)
    assert delay is not None and delay >= 5_000


def test_the_last_attempt_comes_when_the_window_closes_then_the_delivery_is_dead() -> None:
    day = 86_400_000
    assert SCHEDULE.delay_ms(30, day - 1_000, rng=random.Random(1)) == 1_000
    assert SCHEDULE.delay_ms(0, day - 1_000, retry_after_ms=3_600_000) == 1_000
    assert SCHEDULE.delay_ms(31, day) is None
    assert SCHEDULE.delay_ms(31, day + 5) is None


def test_a_delivery_that_always_fails_is_dead_after_24_hours_with_growing_gaps() -> None:
    rng = random.Random(2024)
    elapsed, gaps = 0, []
    while (delay := SCHEDULE.delay_ms(len(gaps), elapsed, rng=rng)) is not None:
        gaps.append(delay)
        elapsed += delay
    assert elapsed == 86_400_000  # the last attempt exactly at the end of the window
    assert 30 <= len(gaps) <= 90
    assert sum(gaps[:5]) < 5 * 60_000 < max(gaps)


def test_schedule_from_settings() -> None:
    settings = Settings(webhook_retry_min_ms=100, webhook_retry_max_ms=1_000, webhook_retry_window_s=60)
    assert RetrySchedule.from_settings(settings) == RetrySchedule(100, 1_000, 60_000)
    with pytest.raises(ValueError, match="webhook_retry_min_ms"):
        Settings(webhook_retry_min_ms=2_000, webhook_retry_max_ms=1_000)


def test_dramatiq_retries_uses_the_schedule_delay_and_fails_the_message_when_the_window_closes() -> None:
    """The design the delivery job follows: ``Retry(delay=...)`` to retry, ``RetryWindowClosed`` to die."""
    broker = StubBroker()
    broker.emit_after("process_boot")
    enqueued: list[int | None] = []

    class Delays(dramatiq.Middleware):
        def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
            enqueued.append(delay)

    broker.add_middleware(Delays())
    assert any(isinstance(m, Retries) for m in broker.middleware)
    schedule = RetrySchedule(min_backoff_ms=1, max_backoff_ms=4, window_ms=10)
    attempts: list[int] = []

    @dramatiq.actor(actor_name="deliver_test", retry_when=retry_when, max_retries=None, broker=broker)
    def deliver() -> None:
        attempts.append(len(attempts))
        delay = schedule.delay_ms(len(attempts) - 1, elapsed_ms=3 * (len(attempts) - 1), rng=random.Random(0))
        if delay is None:
            raise RetryWindowClosed("no answer for 10 ms")
        raise dramatiq.Retry("HTTP 503", delay=delay)

    worker = dramatiq.Worker(broker, worker_timeout=10)
    worker.start()
    try:
        deliver.send()
        broker.join(deliver.queue_name, fail_fast=False, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    # elapsed 0, 3, 6, 9 ms: four retries (the last clamped to the 1 ms left), then the window is closed.
    assert len(attempts) == 5
    retry_delays = [d for d in enqueued if d is not None]  # (a due message moves to its queue without delay)
    assert len(retry_delays) == 4 and retry_delays[-1] == 1
    assert all(1 <= d <= 4 for d in retry_delays)
    assert len(broker.dead_letters) == 1  # failed by Retries: the job is recorded dead


def test_retry_when_retries_everything_but_a_closed_window() -> None:
    assert retry_when(100, dramatiq.Retry("503"))
    assert retry_when(0, OSError("broken pipe"))
    assert not retry_when(3, RetryWindowClosed("done"))
