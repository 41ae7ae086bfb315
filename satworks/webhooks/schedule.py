"""When a failed webhook delivery is tried again: exponential backoff with full jitter inside a window.

Pure; the delivery and email jobs ask it after each retryable attempt and enqueue the next attempt
with that delay themselves (Dramatiq's ``compute_backoff`` jitters only between 1x and 2x and has no
window). The rule is in docs/algorithms.md, "Webhook delivery retries".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from satworks.settings import Settings


@dataclass(frozen=True)
class RetrySchedule:
    min_backoff_ms: int = 5_000
    max_backoff_ms: int = 3_600_000
    window_ms: int = 86_400_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrySchedule:
        return cls(settings.webhook_retry_min_ms, settings.webhook_retry_max_ms, settings.webhook_retry_window_s * 1000)

    def ceiling_ms(self, retries: int) -> int:
        """The longest wait after ``retries`` retries: ``min_backoff * 2**(retries + 1)``, capped."""
        return min(self.max_backoff_ms, self.min_backoff_ms * (1 << min(retries + 1, 40)))

    def delay_ms(
        self, retries: int, elapsed_ms: int, *, retry_after_ms: int | None = None, rng: random.Random | None = None
    ) -> int | None:
        """The wait before the next attempt, or None when the window is over (the delivery is dead).

        ``retries``: retries already made (0 when the first attempt just failed). ``elapsed_ms``: time
        since the first attempt. ``retry_after_ms``: the receiver's ``Retry-After``, already capped.
        The wait is uniform in [min_backoff, ceiling], at least ``retry_after_ms``, and never past the
        window's end, so the last attempt comes when the window closes.
        """
        remaining_ms = self.window_ms - elapsed_ms
        if remaining_ms <= 0:
            return None
        delay = (rng or random).uniform(self.min_backoff_ms, self.ceiling_ms(retries))
        if retry_after_ms is not None:
            delay = max(delay, retry_after_ms)
        return min(round(delay), remaining_ms)
