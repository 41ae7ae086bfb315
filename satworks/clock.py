"""The one clock. Everything that needs the wall time asks here, so tests can move it.

Tests patch ``satworks.clock.utcnow`` (e.g. ``monkeypatch.setattr(clock, "utcnow", lambda: t)``)
instead of sleeping. Callers import the module and call ``clock.utcnow()``, never the function
directly, so a patch reaches them. Durations and deadlines use ``time.monotonic()``, which no test
needs to move.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(tz=UTC)


def unix_s() -> int:
    """Whole seconds since the epoch (signature timestamps, rate-limit windows)."""
    return int(utcnow().timestamp())


def unix_ms() -> int:
    """Milliseconds since the epoch (broker message timestamps)."""
    return int(utcnow().timestamp() * 1000)
