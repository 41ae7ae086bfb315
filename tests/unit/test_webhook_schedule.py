"""Webhook delivery retries: full-jitter backoff inside a 24 h window."""

from __future__ import annotations

import random

import pytest

from satworks.settings import Settings
from satworks.webhooks.schedule import RetrySchedule

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
